// Command fakerouter stands in for homerouter in the lab's own tests: it
// speaks the `run -perm DIR -http ADDR` contract (reads interfaces.json,
// serves /health.json, logs to stderr) so that the lab can be tested
// before, and independently of, the real router.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		log.Fatalf("fakerouter: %v", err)
	}
}

func run(args []string) error {
	if len(args) == 0 || args[0] != "run" {
		return errors.New("usage: fakerouter run -perm DIR [-http ADDR]")
	}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	perm := fs.String("perm", "", "perm dir")
	addr := fs.String("http", ":80", "HTTP listen address")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(*perm, "interfaces.json"))
	if err != nil {
		return err
	}
	var cfg struct {
		Interfaces []struct {
			HardwareAddr string `json:"hardware_addr"`
			Name         string `json:"name"`
		} `json:"interfaces"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return fmt.Errorf("interfaces.json: %w", err)
	}
	http.HandleFunc("/health.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"first_error":"","interfaces":%d}`+"\n", len(cfg.Interfaces))
	})
	srv := &http.Server{Addr: *addr}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	log.Printf("fakerouter: %d interfaces, listening on %s", len(cfg.Interfaces), *addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Printf("fakerouter: stopped")
	return nil
}
