// Command gen writes the OUI table that package oui embeds, from the
// IEEE's MA-L registry as Debian's ieee-data package ships it
// (/usr/share/ieee-data/oui.csv): one "XXXXXX<TAB>Organization" line per
// assignment, sorted, gzipped. `make oui` runs it; the table is committed,
// so that `go build` needs no ieee-data.
package main

import (
	"compress/gzip"
	"encoding/csv"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"slices"
	"strings"
)

func main() {
	in := flag.String("in", "/usr/share/ieee-data/oui.csv", "the IEEE MA-L registry as CSV")
	out := flag.String("out", "oui.tsv.gz", "the table to write")
	flag.Parse()
	if err := run(*in, *out); err != nil {
		log.Fatal(err)
	}
}

func run(in, out string) error {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	var lines []string
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", in, err)
		}
		if len(rec) < 3 || rec[0] != "MA-L" || len(rec[1]) != 6 {
			continue // the header, or another registry
		}
		name := strings.Join(strings.Fields(rec[2]), " ")
		if name == "" {
			continue
		}
		lines = append(lines, strings.ToUpper(rec[1])+"\t"+name+"\n")
	}
	if len(lines) < 1000 {
		return fmt.Errorf("%s: only %d assignments: not the IEEE's registry?", in, len(lines))
	}
	slices.Sort(lines)
	lines = slices.Compact(lines)
	tmp := out + ".tmp"
	w, err := os.Create(tmp)
	if err != nil {
		return err
	}
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	for _, l := range lines {
		if _, err := io.WriteString(zw, l); err != nil {
			return err
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	log.Printf("%s: %d assignments", out, len(lines))
	return os.Rename(tmp, out)
}
