package firewall

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"

	"github.com/homerouter/homerouter/internal/lab"
)

func TestMain(m *testing.M) { lab.Main(m) }

// TestRulesetLab loads each golden case into a namespace's kernel over
// netlink, as the service does, and compares what `nft list ruleset`
// shows with the golden file: the builder's expressions are what its
// text says. Loading twice changes nothing, and a table someone else
// added survives.
func TestRulesetLab(t *testing.T) {
	lab.Require(t, "nft")
	l := lab.NewT(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := l.Netns("fw")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Run(ctx, "nft", "add table inet other; add chain inet other c { type filter hook input priority 10; }"); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join("/run/netns", n.Name()))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	load := func(rs *Ruleset) error {
		c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
		if err != nil {
			return err
		}
		defer c.CloseLasting()
		rs.add(c)
		return c.Flush()
	}
	for _, tc := range goldenCases {
		if !tc.fromNft {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			for i := range 2 {
				if err := load(Build(tc.in)); err != nil {
					t.Fatalf("load #%d: %v", i+1, err)
				}
			}
			out, err := n.Run(ctx, "nft", "list", "table", "inet", TableName)
			if err != nil {
				t.Fatal(err)
			}
			if *update {
				if err := os.WriteFile(filepath.Join("testdata", tc.name+".nft"), []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if d := cmp.Diff(golden(t, tc.name), out); d != "" {
				t.Errorf("nft list table inet %s -golden +got:\n%s", TableName, d)
			}
			all, err := n.Run(ctx, "nft", "list", "tables")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(all, "table inet other") || strings.Count(all, "table inet "+TableName) != 1 {
				t.Errorf("tables after two loads:\n%s", all)
			}
		})
	}
}
