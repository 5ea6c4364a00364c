// Package backup serves the backup and restore of the router's /perm:
// GET /backup.tar.gz and POST /restore on the router (LAN only, with the
// router's password), and the workstation's side of them (`homerouter
// backup`, `homerouter restore`).
//
// A backup is a gzip tar of /perm's top-level files (see Included for
// which, Files for the limits). A restore takes such an archive, checks
// every file in it as `homerouter check` does, and only then swaps it in
// (see Stage, Commit, Complete: all or nothing, also across a power cut)
// and applies it without a restart:
//
//   - config files are reloaded, as SIGHUP does: no downtime;
//   - the state files of the router's setup (the DHCPv6 DUID, the ULA,
//     the advertised prefixes) are loaded back into the Store's topics,
//     so that the running router does not write its older values over
//     them, and the services that follow those topics (netconfig, router
//     advertisements, the status page) take them up at once. The DHCPv6
//     client takes a restored DUID at its next start;
//   - the leases, which describe the network as it is now and not the
//     router's setup, stay as the running router has them: the uplink's
//     DHCPv4 and DHCPv6 leases (a backup's would configure an address,
//     gateway and delegated prefix of another day until the next
//     renewal) and the LAN server's lease table (a backup's could hand
//     out addresses that devices hold now). The archive's copies are
//     neither written nor loaded, and the answer says so (see
//     state.Store.LiveStateFileNames and Result.Kept). On new hardware,
//     which has no lease yet, the router asks for new ones, as at any
//     first boot;
//   - the password is read at every request: the next one needs the
//     restored password;
//   - the hostname applies at the next boot, as an edit of it does.
//
// A restore removes the files a backup would hold that the archive does
// not (a config file added since the backup), except the password and
// the state files: without a password the router would refuse everyone,
// and a state file the archive lacks is one the backup's router had not
// made yet (no lease, no ULA), so the running router's value stays. It
// replaces and removes regular files only: an archive file named like a
// directory (update/, lost+found/) or another entry that is not a
// regular file in /perm is refused before anything changes (Conflicts).
package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/homerouter/homerouter/services"
	"github.com/homerouter/homerouter/state"
)

// ServiceName is the backup's name in the supervisor and the logs.
const ServiceName = "backup"

// Service serves the backup and the restore of one router's /perm.
type Service struct {
	st     *state.Store
	logger *log.Logger
	dir    string

	// mu makes a restore exclusive: a backup taken during one would mix
	// old and new files, and two restores would stage into one directory.
	mu sync.RWMutex
}

// New returns the backup service of the Store's perm directory.
func New(st *state.Store, logger *log.Logger) *Service {
	return &Service{st: st, logger: logger, dir: st.Dir()}
}

// Run waits until ctx is done: the service only answers requests, and
// has no goroutine of its own. It is supervised like every service so
// that it shows in the status page's list. An interrupted restore is
// completed by Recover, which main runs before the config is read, not
// here: by the time Run starts, the other services have read /perm.
func (s *Service) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// Service is the backup as the supervisor runs it, with its pages: one
// line in main's list.
func (s *Service) Service() services.Service {
	return services.Service{Name: ServiceName, Run: s.Run, Endpoints: s.Endpoints()}
}

// Endpoints are the backup's pages; both need the router's password (a
// backup holds it, and a restore changes everything).
//
//	GET  /backup.tar.gz  the backup: a gzip tar of /perm's files
//	POST /restore        body: such an archive (at most MaxArchiveSize);
//	                     200 and what changed, or 400 and every problem,
//	                     one per line, with /perm unchanged
func (s *Service) Endpoints() []services.Endpoint {
	return []services.Endpoint{
		{Pattern: "GET /backup.tar.gz", Handler: http.HandlerFunc(s.backup), NeedsPassword: true},
		{Pattern: "POST /restore", Handler: http.HandlerFunc(s.restore), NeedsPassword: true},
	}
}

func (s *Service) backup(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	data, err := Archive(s.dir)
	s.mu.RUnlock()
	if err != nil {
		s.logger.Printf("%v", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.logger.Printf("backup of %s to %s: %d bytes", s.dir, r.RemoteAddr, len(data))
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", services.BackupFileName(time.Now())))
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", fmt.Sprint(len(data)))
	w.Write(data)
}

func (s *Service) restore(w http.ResponseWriter, r *http.Request) {
	// One more byte than the limit, so that ReadArchive sees it is over.
	body := http.MaxBytesReader(w, r.Body, MaxArchiveSize+1)
	res, err := s.Restore(body)
	var refused Refused
	switch {
	case errors.As(err, &refused):
		s.logger.Printf("restore from %s refused: %s", r.RemoteAddr, strings.ReplaceAll(refused.Error(), "\n", "; "))
		http.Error(w, "restore refused, nothing changed:\n"+refused.Error(), http.StatusBadRequest)
		return
	case err != nil:
		s.logger.Printf("restore from %s: %v", r.RemoteAddr, err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.logger.Printf("restore from %s: %s", r.RemoteAddr, res)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "%s; the config is reloaded and the state files are loaded\n", res)
}

// Restore reads an archive, and when every file in it is good swaps it
// into /perm and applies it (see the package doc). A bad archive is
// Refused, with every problem, and /perm is left as it was.
func (s *Service) Restore(archive io.Reader) (Result, error) {
	var res Result
	files, err := ReadArchive(archive)
	if err != nil {
		return res, err
	}
	// The leases of the live network stay as the running router has
	// them: the archive's are neither written nor loaded.
	live := s.st.LiveStateFileNames()
	files = slices.DeleteFunc(files, func(f File) bool {
		if slices.Contains(live, f.Name) {
			res.Kept = append(res.Kept, f.Name)
			return true
		}
		return false
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	// A restore that failed half way through its completion (a disk
	// error) is finished first: its commit stands, and the state files
	// it puts in place are loaded, as this restore's are.
	err = s.st.ReplaceState(func() ([]string, error) {
		done, err := recoverRestore(s.dir, s.logger)
		return done.Restored, err
	})
	if err != nil {
		return res, err
	}
	// Checked under the lock, before anything is staged: a file that
	// could not be put in place once committed is refused now.
	if problems, err := Conflicts(s.dir, files); err != nil {
		return res, err
	} else if len(problems) > 0 {
		return res, problems
	}
	staging, err := Stage(s.dir, files)
	if err != nil {
		return res, err
	}
	if problems := Validate(staging); len(problems) > 0 {
		discard(s.dir, s.logger)
		return res, problems
	}
	stateFiles := s.st.StateFileNames()
	remove, err := ToRemove(s.dir, files, func(name string) bool {
		return name == state.PasswordFile || slices.Contains(stateFiles, name)
	})
	if err != nil {
		discard(s.dir, s.logger)
		return res, err
	}
	err = s.st.ReplaceState(func() ([]string, error) {
		if err := Commit(s.dir, remove); err != nil {
			discard(s.dir, s.logger) // not committed
			return nil, err
		}
		done, err := Complete(s.dir)
		res.Restored, res.Removed, res.Skipped = done.Restored, done.Removed, done.Skipped
		return res.Restored, err
	})
	if err != nil {
		return res, err
	}
	// The config files were validated: a problem now is a person's edit
	// since, and the previous config stays in force for that file.
	for _, err := range s.st.Reload() {
		s.logger.Printf("after the restore: %s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return res, nil
}

// discard removes a staged restore that will not be committed. What it
// cannot remove, the next restore or start does (Recover).
func discard(dir string, logger *log.Logger) {
	if err := os.RemoveAll(filepath.Join(dir, StagingDir)); err != nil {
		logger.Printf("restore: %v", err)
	}
}
