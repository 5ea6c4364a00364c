package dhcp4d

import (
	"context"
	"io"
	"log"
	"net/netip"
	"testing"
	"time"

	"github.com/homerouter/homerouter/state"
)

// TestPublish: the lease table follows the handler's changes, and a
// change made within publishInterval of the last publication, just
// before the service stops, is published too.
func TestPublish(t *testing.T) {
	st := state.NewStore(t.TempDir())
	s := New(st, log.New(io.Discard, "", 0))
	s.leases = st.DHCPv4ServerLeases
	lease := func(addr string) Lease {
		return Lease{Addr: netip.MustParseAddr(addr), HardwareAddr: "02:77:00:00:00:21", Expiry: time.Now().Add(time.Hour)}
	}
	handler := func(ls ...Lease) *Handler {
		h, err := NewHandler(Config{}, Link{Addr: netip.MustParsePrefix("192.168.42.1/24")}, ls, time.Now)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	dirty := state.NewTopic[*Handler]("dirty")
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.publish(ctx, dirty)
	}()

	ch := st.DHCPv4ServerLeases.Changed()
	dirty.Publish(handler(lease("192.168.42.100")))
	<-ch
	if got := st.DHCPv4ServerLeases.Value().Leases; len(got) != 1 || got[0].Addr != netip.MustParseAddr("192.168.42.100") {
		t.Fatalf("published %+v", got)
	}

	// Within publishInterval of the last publication, then stopped: the
	// change still gets out.
	dirty.Publish(handler(lease("192.168.42.101")))
	stop()
	<-done
	if got := st.DHCPv4ServerLeases.Value().Leases; len(got) != 1 || got[0].Addr != netip.MustParseAddr("192.168.42.101") {
		t.Errorf("after the stop the table is %+v, want the last change", got)
	}
}
