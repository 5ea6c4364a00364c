// Command gen writes the OUI table that package oui embeds, from the
// IEEE's MA-L registry as Debian's ieee-data package ships it
// (/usr/share/ieee-data/oui.csv): one "XXXXXX<TAB>Organization" line per
// assignment, sorted by OUI, each OUI once (the first name the registry
// gives it), gzipped. `make oui` runs it; the table is committed, so
// that `go build` needs no ieee-data.
package main

import (
	"bytes"
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
	names := map[string]string{}
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
		oui := strings.ToUpper(rec[1])
		if _, ok := names[oui]; !ok {
			names[oui] = name
		}
	}
	if len(names) < 1000 {
		return fmt.Errorf("%s: only %d assignments: not the IEEE's registry?", in, len(names))
	}
	ouis := make([]string, 0, len(names))
	for oui := range names {
		ouis = append(ouis, oui)
	}
	slices.Sort(ouis)
	var b bytes.Buffer
	zw, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
	if err != nil {
		return err
	}
	for _, oui := range ouis {
		io.WriteString(zw, oui+"\t"+names[oui]+"\n") // a bytes.Buffer takes all
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(out, b.Bytes(), 0o644); err != nil {
		return err
	}
	log.Printf("%s: %d assignments", out, len(ouis))
	return nil
}
