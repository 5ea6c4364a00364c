package oui

import (
	"bytes"
	"compress/gzip"
	"testing"
)

// TestVendor looks up a few well-known prefixes in the embedded table.
func TestVendor(t *testing.T) {
	var tab Table
	for _, tc := range []struct{ mac, want string }{
		{"00:00:0c:12:34:56", "Cisco Systems, Inc"},
		{"00:1B:63:00:00:01", "Apple, Inc."},
		{"f4-f5-d8-aa-bb-cc", "Google, Inc."},
		{"00:00:00:00:00:01", "XEROX CORPORATION"},
		{"02:77:00:00:00:21", ""}, // locally administered: the lab's
		{"52:54:00:12:34:56", ""}, // locally administered: QEMU's
		{"fc:ff:ff:00:00:00", ""}, // unassigned
		{"nonsense", ""},
	} {
		if got := tab.Vendor(tc.mac); got != tc.want {
			t.Errorf("Vendor(%s) = %q, want %q", tc.mac, got, tc.want)
		}
	}
	if n := len(tab.ouis); n < 30000 {
		t.Errorf("the table has %d assignments, want the IEEE's 30,000 and more", n)
	}
}

// TestLoadRejects: a table that is not one is an error, not a panic.
func TestLoadRejects(t *testing.T) {
	for name, text := range map[string]string{
		"a bad line":     "00000C\tCisco\nnonsense\n",
		"out of order":   "00000C\tCisco\n000001\tXerox\n",
		"an OUI twice":   "00000C\tCisco\n00000C\tCisco again\n",
		"a short OUI":    "0C\tCisco\n",
		"no name column": "00000C\n",
	} {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write([]byte(text))
		zw.Close()
		var tab Table
		if err := tab.load(b.Bytes()); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	var tab Table
	if err := tab.load([]byte("not gzip")); err == nil {
		t.Error("not gzip: no error")
	}
}
