package daemon

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// ErrUnsafeDataDir refuses a data directory other users may write to:
// they could replace the identity key, the database or the API socket.
var ErrUnsafeDataDir = errors.New("daemon: the data directory is writable by other users")

// checkDataDirMode refuses a group- or world-writable data directory (as
// ssh's StrictModes refuses such a home directory) and warns about one
// others may only read.
func checkDataDirMode(dir string, log *slog.Logger) error {
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	perm := st.Mode().Perm()
	if perm&0o022 != 0 {
		return fmt.Errorf("%w: %s has mode %04o (chmod 700 %s)", ErrUnsafeDataDir, dir, perm, dir)
	}
	if err := checkParentModes(dir); err != nil {
		return err
	}
	if perm&0o077 != 0 {
		log.Warn("the data directory is readable by other users; it holds the message store and the API socket (chmod 700 it)",
			"dir", dir, "mode", fmt.Sprintf("%04o", perm))
	}
	return nil
}

// checkParentModes refuses a data directory whose path, as given or
// with its symlinks resolved, runs through a directory others may write
// to without the sticky bit: they could rename the data directory (or a
// symlink to it) away and put their own in its place.
func checkParentModes(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	for _, p := range []string{abs, real} {
		for d := filepath.Dir(p); ; d = filepath.Dir(d) {
			st, err := os.Stat(d)
			if err != nil {
				return fmt.Errorf("data directory: %w", err)
			}
			if st.Mode().Perm()&0o022 != 0 && st.Mode()&os.ModeSticky == 0 {
				return fmt.Errorf("%w: %s lies in %s, which has mode %04o (chmod go-w %s)", ErrUnsafeDataDir, dir, d, st.Mode().Perm(), d)
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	return nil
}

// isLoopbackHostPort reports whether the host of addr (host:port) is a
// loopback address or "localhost"; an empty host (all interfaces) is not.
func isLoopbackHostPort(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// requireToken serves h only to requests carrying token as a bearer token
// or as a basic-auth password (Prometheus supports both).
func requireToken(token string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			_, got, ok = r.BasicAuth()
		}
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="meshd metrics"`)
			http.Error(w, "meshd: /metrics needs the API token", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
