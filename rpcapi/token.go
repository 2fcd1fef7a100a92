package rpcapi

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// File names in meshd's data directory.
const (
	SocketFile = "api.sock"  // the unix socket
	TokenFile  = "api.token" // the HTTP bearer token
)

// DefaultDataDir is meshd's data directory when neither --data-dir nor
// MESHD_DATA_DIR names one: $XDG_DATA_HOME/meshd, else
// ~/.local/share/meshd, else ./meshd-data for a user without a home
// directory. The daemon and its clients share it, so they find each other.
func DefaultDataDir() string {
	if x := os.Getenv("XDG_DATA_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "meshd")
	}
	if h, err := os.UserHomeDir(); err == nil && h != "" {
		return filepath.Join(h, ".local", "share", "meshd")
	}
	return "meshd-data"
}

// SocketPath is the unix socket's path in dataDir.
func SocketPath(dataDir string) string { return filepath.Join(dataDir, SocketFile) }

// TokenPath is the bearer token file's path in dataDir.
func TokenPath(dataDir string) string { return filepath.Join(dataDir, TokenFile) }

// tokenBytes is the token's entropy; the file holds it in hex.
const tokenBytes = 32

// WriteToken creates a fresh random token (32 bytes, 64 hex characters) and
// writes it to path with mode 0600, replacing any previous token
// atomically. It returns the token.
func WriteToken(path string) (string, error) {
	var b [tokenBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("rpcapi: token: %w", err)
	}
	tok := hex.EncodeToString(b[:])
	f, err := os.CreateTemp(filepath.Dir(path), ".api-token-")
	if err != nil {
		return "", fmt.Errorf("rpcapi: writing token: %w", err)
	}
	tmp := f.Name()
	err = f.Chmod(0o600) // CreateTemp already uses 0600; keep it explicit
	if err == nil {
		_, err = f.WriteString(tok + "\n")
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("rpcapi: writing token %s: %w", path, err)
	}
	return tok, nil
}

// ErrBadToken is returned by ReadToken for a file that does not hold a token.
var ErrBadToken = errors.New("rpcapi: malformed token file")

// ReadToken reads a token written by WriteToken.
func ReadToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("rpcapi: reading token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) != 2*tokenBytes {
		return "", fmt.Errorf("%w %s: want %d hex characters, got %d characters", ErrBadToken, path, 2*tokenBytes, len(tok))
	}
	if _, err := hex.DecodeString(tok); err != nil {
		return "", fmt.Errorf("%w %s: not hex", ErrBadToken, path)
	}
	return tok, nil
}
