// Package oui names the maker of a network card from the first three
// bytes of its MAC address (the IEEE's organizationally unique
// identifier), for the status page's table of LAN devices.
//
// The table is the IEEE's MA-L registry as Debian's ieee-data package
// ships it, made compact by ./gen (`make oui`) and embedded: nothing is
// downloaded at run time. It is unpacked when first asked for, into one
// string of the names (about 1 MB) and two arrays of 32-bit numbers, so
// that a router nobody looks at does not pay for it, and the garbage
// collector has three objects to look at rather than 30,000.
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

//go:embed oui.tsv.gz
var tableGz []byte

// Table maps OUIs to organizations. The zero value is ready to use and
// loads the embedded table at the first Vendor.
type Table struct {
	once  sync.Once
	err   error
	ouis  []uint32 // strictly increasing
	ends  []uint32 // ouis[i]'s name ends at names[ends[i]], and starts where ouis[i-1]'s ends
	names string
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
	i, ok := slices.BinarySearch(t.ouis, key)
	if !ok {
		return ""
	}
	start := uint32(0)
	if i > 0 {
		start = t.ends[i-1]
	}
	return t.names[start:t.ends[i]]
}

// load parses the gzipped "XXXXXX<TAB>name" lines.
func (t *Table) load(gz []byte) error {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return fmt.Errorf("oui: %w", err)
	}
	var names strings.Builder
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		hex, name, ok := strings.Cut(sc.Text(), "\t")
		v, err := strconv.ParseUint(hex, 16, 32)
		if !ok || err != nil || len(hex) != 6 {
			return fmt.Errorf("oui: bad line %q", sc.Text())
		}
		if n := len(t.ouis); n > 0 && uint32(v) <= t.ouis[n-1] {
			return fmt.Errorf("oui: %s out of order or twice", hex)
		}
		names.WriteString(name)
		t.ouis = append(t.ouis, uint32(v))
		t.ends = append(t.ends, uint32(names.Len()))
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("oui: %w", err)
	}
	t.names = names.String()
	t.ouis, t.ends = slices.Clip(t.ouis), slices.Clip(t.ends)
	return nil
}
