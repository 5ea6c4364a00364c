package state

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// PasswordFile is the router's password in /perm: what an update, a
// backup or a packet capture asks for (HTTP basic auth, any user name).
// The router makes one at its first boot; a person may write their own,
// which takes effect at the next request.
const PasswordFile = "http-password.txt"

// passwordAlphabet leaves out letters and digits that people confuse
// when they copy a password from a console: 0/O, 1/l/I.
const passwordAlphabet = "abcdefghijkmnopqrstuvwxyz23456789"

// EnsurePassword returns the password in dir's PasswordFile, making one
// (20 characters, about 100 bits) when there is no such file: created
// says so, for the caller to show it on the console.
func EnsurePassword(dir string) (pw string, created bool, err error) {
	pw, err = ReadPassword(dir)
	if !errors.Is(err, fs.ErrNotExist) {
		return pw, false, err
	}
	// Random bytes below the largest multiple of the alphabet's size,
	// so that every character is equally likely.
	limit := byte(256 / len(passwordAlphabet) * len(passwordAlphabet))
	b := make([]byte, 0, 20)
	for one := make([]byte, 1); len(b) < cap(b); {
		rand.Read(one) // never fails (crypto/rand)
		if one[0] < limit {
			b = append(b, passwordAlphabet[int(one[0])%len(passwordAlphabet)])
		}
	}
	if err := WriteFileAtomic(filepath.Join(dir, PasswordFile), append(b, '\n'), 0o600); err != nil {
		return "", false, fmt.Errorf("make the password: %w", err)
	}
	return string(b), true, nil
}

// ReadPassword returns the password in dir's PasswordFile, without the
// surrounding white space. An empty file is an error: no password would
// let everyone in.
func ReadPassword(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, PasswordFile))
	if err != nil {
		return "", err
	}
	pw := strings.TrimSpace(string(b))
	if pw == "" {
		return "", fmt.Errorf("%s is empty", PasswordFile)
	}
	return pw, nil
}
