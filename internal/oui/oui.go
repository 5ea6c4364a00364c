// Package oui names the maker of a network card from the first three
// bytes of its MAC address (the IEEE's organizationally unique
// identifier), for the status page's table of LAN devices.
//
// The table is the IEEE's MA-L registry as Debian's ieee-data package
// ships it, made compact by ./gen (`make oui`) and embedded: nothing is
// downloaded at run time. It is parsed when first asked for, into about
// a megabyte, so that a router nobody looks at does not pay for it.
package oui

import (
	"bufio"
	"bytes"
	"compress/gzip"
	_ "embed"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
)

//go:generate go run ./gen -in /usr/share/ieee-data/oui.csv -out oui.tsv.gz

//go:embed oui.tsv.gz
var tableGz []byte

// Table maps OUIs to organizations. The zero value is ready to use and
// loads the embedded table at the first Vendor.
type Table struct {
	once  sync.Once
	err   error
	ouis  []uint32 // sorted
	names []string // names[i] is ouis[i]'s
}

// Vendor returns the organization the IEEE assigned mac's OUI to, or ""
// for an unknown one, a locally administered address (a virtual
// machine's, a phone's private address) or a MAC that does not parse.
func (t *Table) Vendor(mac string) string {
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) < 3 || hw[0]&0x02 != 0 {
		return ""
	}
	t.once.Do(func() { t.err = t.load(tableGz) })
	if t.err != nil {
		return ""
	}
	key := uint32(hw[0])<<16 | uint32(hw[1])<<8 | uint32(hw[2])
	if i, ok := slices.BinarySearch(t.ouis, key); ok {
		return t.names[i]
	}
	return ""
}

// load parses the gzipped "XXXXXX<TAB>name" lines.
func (t *Table) load(gz []byte) error {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return fmt.Errorf("oui: %w", err)
	}
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		hex, name, ok := strings.Cut(sc.Text(), "\t")
		v, err := strconv.ParseUint(hex, 16, 32)
		if !ok || err != nil || len(hex) != 6 {
			return fmt.Errorf("oui: bad line %q", sc.Text())
		}
		t.ouis = append(t.ouis, uint32(v))
		t.names = append(t.names, name)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("oui: %w", err)
	}
	if !slices.IsSorted(t.ouis) {
		return fmt.Errorf("oui: the table is not sorted")
	}
	return nil
}
