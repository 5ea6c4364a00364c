package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/homerouter/homerouter/services"
	"github.com/homerouter/homerouter/services/backup"
)

// routerFlags are the flags of the commands that talk to a router from a
// workstation (update, backup, restore): where it is and its password.
type routerFlags struct {
	router, password, passwordFile string
}

// addRouterFlags defines -router, -password and -password-file on fs.
func addRouterFlags(fs *flag.FlagSet) *routerFlags {
	f := &routerFlags{}
	fs.StringVar(&f.router, "router", "192.168.42.1", "the router's `address` (host or host:port)")
	fs.StringVar(&f.password, "password", "", "the router's password (default $HOMEROUTER_PASSWORD, or -password-file)")
	fs.StringVar(&f.passwordFile, "password-file", "", "a `file` holding the router's password (its http-password.txt)")
	return f
}

// client returns the connection to the router, with the password from
// -password, else $HOMEROUTER_PASSWORD, else -password-file; cmd names
// the command in errors.
func (f *routerFlags) client(cmd string) (services.RouterClient, error) {
	c := services.RouterClient{Router: f.router, Password: f.password}
	if c.Password == "" {
		c.Password = os.Getenv("HOMEROUTER_PASSWORD")
	}
	if c.Password == "" && f.passwordFile != "" {
		b, err := os.ReadFile(f.passwordFile)
		if err != nil {
			return c, fmt.Errorf("%s: %w", cmd, err)
		}
		c.Password = strings.TrimSpace(string(b))
	}
	if c.Password == "" {
		return c, fmt.Errorf("%s: the router's password is needed: -password, $HOMEROUTER_PASSWORD or -password-file (it is in the router's /perm/http-password.txt, and on its console at its first boot)", cmd)
	}
	return c, nil
}

// backupRouter is `homerouter backup`: it saves the router's /perm
// (config, state, password) into a file.
func backupRouter(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("homerouter backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rf := addRouterFlags(fs)
	out := fs.String("o", "", "the `file` to write (default homerouter-backup-DATE-TIME.tar.gz here)")
	if err := fs.Parse(args); err != nil {
		return errReported
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("backup: unexpected arguments %q", fs.Args())
	}
	rc, err := rf.client("backup")
	if err != nil {
		return err
	}
	path := *out
	if path == "" {
		path = services.BackupFileName(time.Now())
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	n, err := (&backup.Client{RouterClient: rc}).Save(ctx, path)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "saved the router's backup in %s (%d bytes; it holds the router's password)\n", path, n)
	return nil
}

// restoreRouter is `homerouter restore FILE`: the router checks the
// backup and puts it in force, or refuses it with every problem.
func restoreRouter(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("homerouter restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rf := addRouterFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: homerouter restore [flags] FILE")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return errReported
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("restore: one archive FILE is needed")
	}
	rc, err := rf.client("restore")
	if err != nil {
		return err
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	answer, err := (&backup.Client{RouterClient: rc}).Restore(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, answer)
	return nil
}
