// Package fappissuer keeps a FAPP credential issuer's files: the issuer's
// private key, the ledger of credentials it issued and its latest
// revocation list. An issuer is a chamber, a KV or a community registry
// that vouches that the holder of a therapist node's keys is licensed; node
// operators configure the issuer's public key as trusted.
//
// These are operations on files the issuer keeps, not calls to a daemon:
// the issuer's key is a secret that belongs on the issuer's machine, not in
// any node. The package exists so apps (which may import only rpcapi) can
// issue and revoke with fapp's own encodings and signatures; apps/fapp's
// "issuer" commands are a thin layer over it.
//
// The directory holds:
//
//	issuer.key   the private key (fapp.Issuer's 37-byte encoding), mode 0600
//	issuer.pub   the public key in hex, for node configurations
//	issued.tsv   one line per credential: serial, registry ID, Berufsgruppe,
//	             valid from, valid to (RFC 3339), identity text
//	revocation   the latest revocation list's text form (absent before the first)
//
// The issuer is one person at one machine: the files are not locked
// against two processes issuing at the same moment.
package fappissuer

import (
	"bufio"
	"cmp"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"meshd.dev/meshd/fapp"
	"meshd.dev/meshd/rpcapi"
)

// File names inside an issuer directory.
const (
	KeyFile        = "issuer.key"
	PubFile        = "issuer.pub"
	LedgerFile     = "issued.tsv"
	RevocationFile = "revocation"
)

// Errors. Every error of the package wraps one of them or an os error.
var (
	// ErrExists: Init found an issuer key in the directory already.
	ErrExists = errors.New("fappissuer: the directory already holds an issuer key")
	// ErrNoIssuer: the directory holds no issuer key (run Init).
	ErrNoIssuer = errors.New("fappissuer: no issuer key in the directory")
	// ErrInput: a value given to Issue or Revoke is wrong.
	ErrInput = errors.New("fappissuer: invalid input")
	// ErrLedger: the ledger or revocation file is damaged.
	ErrLedger = errors.New("fappissuer: damaged issuer file")
)

// Issuer is an opened issuer directory.
type Issuer struct {
	dir string
	key *fapp.Issuer
}

// Init creates dir (mode 0700) with a fresh issuer key drawn from the
// operating system's randomness, and returns the opened issuer. It refuses
// to replace an existing key: losing it would orphan every credential.
func Init(dir string) (*Issuer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	key, err := fapp.NewIssuer(rand.Reader)
	if err != nil {
		return nil, err
	}
	b, _ := key.MarshalBinary()
	f, err := os.OpenFile(filepath.Join(dir, KeyFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("%w: %s", ErrExists, filepath.Join(dir, KeyFile))
	}
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	is := &Issuer{dir: dir, key: key}
	return is, os.WriteFile(filepath.Join(dir, PubFile), []byte(is.PublicKey()+"\n"), 0o644)
}

// Open opens an issuer directory made by Init.
func Open(dir string) (*Issuer, error) {
	b, err := os.ReadFile(filepath.Join(dir, KeyFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s (create one with: fapp issuer init --dir %s)", ErrNoIssuer, dir, dir)
	}
	if err != nil {
		return nil, err
	}
	key, err := fapp.ParseIssuer(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrLedger, KeyFile, err)
	}
	return &Issuer{dir: dir, key: key}, nil
}

// PublicKey returns the issuer's public key in hex: what node operators put
// in their configuration's trusted issuers.
func (is *Issuer) PublicKey() string { return is.key.PublicKey().String() }

// ID returns the issuer key's 8-byte ID in hex, as credentials name it.
func (is *Issuer) ID() string { return is.key.PublicKey().ID().String() }

// Request is what Issue needs: whose keys, what profession and registry
// ID, and the validity.
type Request struct {
	// Identity is the therapist node's identity text
	// (fapp-identity:..., from fapp.credential.status).
	Identity string
	// Berufsgruppe is the profession, e.g. PSYCHOLOGISCHER_PSYCHOTHERAPEUT.
	Berufsgruppe string
	// RegistryID is the license or registry ID (e.g. a Telematik-ID), at
	// most 64 bytes of printable text.
	RegistryID string
	// ValidFrom and ValidTo bound the validity (whole seconds are kept).
	ValidFrom, ValidTo time.Time
}

// Entry is one line of the ledger.
type Entry struct {
	Serial       uint64    `json:"serial"`
	RegistryID   string    `json:"registry_id"`
	Berufsgruppe string    `json:"berufsgruppe"`
	ValidFrom    time.Time `json:"valid_from"`
	ValidTo      time.Time `json:"valid_to"`
	Identity     string    `json:"identity"`
	// Revoked is true when the latest revocation list names the serial.
	Revoked bool `json:"revoked,omitempty"`
}

// Issue signs a credential for r with the next serial, records it in the
// ledger and returns the entry and the credential's text form
// (fapp-credential:...) to hand to the therapist.
func (is *Issuer) Issue(r Request) (Entry, string, error) {
	id, err := rpcapi.ParseFAPPIdentity(r.Identity)
	if err != nil {
		return Entry{}, "", fmt.Errorf("%w: identity: %v", ErrInput, err)
	}
	beruf, err := fapp.ParseBerufsgruppe(r.Berufsgruppe)
	if err != nil {
		return Entry{}, "", fmt.Errorf("%w: %v", ErrInput, err)
	}
	if strings.ContainsAny(r.RegistryID, "\t\n") {
		return Entry{}, "", fmt.Errorf("%w: the registry ID contains a tab or line break", ErrInput)
	}
	entries, err := is.Ledger()
	if err != nil {
		return Entry{}, "", err
	}
	var serial uint64 = 1
	for _, e := range entries {
		serial = max(serial, e.Serial+1)
	}
	c, err := is.key.Issue(fapp.Credential{
		Serial: serial, Therapist: id, Berufsgruppe: beruf, RegistryID: r.RegistryID,
		ValidFrom: r.ValidFrom.Truncate(time.Second).UTC(), ValidTo: r.ValidTo.Truncate(time.Second).UTC(),
	})
	if err != nil {
		return Entry{}, "", fmt.Errorf("%w: %v", ErrInput, err)
	}
	b, err := c.MarshalBinary()
	if err != nil {
		return Entry{}, "", fmt.Errorf("%w: %v", ErrInput, err)
	}
	e := Entry{Serial: serial, RegistryID: c.RegistryID, Berufsgruppe: beruf.String(), ValidFrom: c.ValidFrom, ValidTo: c.ValidTo,
		Identity: rpcapi.FormatFAPPIdentity(id)}
	return e, rpcapi.FormatFAPPText(rpcapi.FAPPCredentialPrefix, b), is.appendLedger(e)
}

func (is *Issuer) appendLedger(e Entry) error {
	f, err := os.OpenFile(filepath.Join(is.dir, LedgerFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Serial, e.RegistryID, e.Berufsgruppe,
		e.ValidFrom.Format(time.RFC3339), e.ValidTo.Format(time.RFC3339), e.Identity)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Ledger returns the issued credentials in serial order, marked when the
// latest revocation list names them.
func (is *Issuer) Ledger() ([]Entry, error) {
	rev, err := is.revocation()
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(is.dir, LedgerFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Entry
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		e, err := parseEntry(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("%w: %s line %d: %v", ErrLedger, LedgerFile, n, err)
		}
		e.Revoked = rev != nil && rev.Revoked(e.Serial)
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Entry) int { return cmp.Compare(a.Serial, b.Serial) })
	return out, sc.Err()
}

func parseEntry(line string) (Entry, error) {
	f := strings.Split(line, "\t")
	if len(f) != 6 {
		return Entry{}, fmt.Errorf("%d fields, want 6", len(f))
	}
	serial, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil {
		return Entry{}, fmt.Errorf("serial %q", f[0])
	}
	from, err1 := time.Parse(time.RFC3339, f[3])
	to, err2 := time.Parse(time.RFC3339, f[4])
	if err := errors.Join(err1, err2); err != nil {
		return Entry{}, err
	}
	return Entry{Serial: serial, RegistryID: f[1], Berufsgruppe: f[2], ValidFrom: from, ValidTo: to, Identity: f[5]}, nil
}

// revocation reads the latest revocation list (nil before the first).
func (is *Issuer) revocation() (*fapp.Revocation, error) {
	b, err := os.ReadFile(filepath.Join(is.dir, RevocationFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	raw, err := rpcapi.ParseFAPPText(rpcapi.FAPPRevocationPrefix, string(b))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrLedger, RevocationFile, err)
	}
	r, err := fapp.ParseRevocation(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrLedger, RevocationFile, err)
	}
	return r, nil
}

// Revocation is a revocation list as Revoke returns it.
type Revocation struct {
	Sequence uint32   `json:"sequence"`
	Serials  []uint64 `json:"serials"`
	// Text is the signed list's text form (fapp-revocation:...): import it
	// on nodes with fapp.revocation.import.
	Text string `json:"text"`
}

// Revoke adds serials (each one issued by this issuer) to the revocation
// list, signs the complete list with the next sequence, issued at now,
// stores it and returns it. Revoking nothing new re-signs the same list
// with a new sequence (to refresh it).
func (is *Issuer) Revoke(serials []uint64, now time.Time) (Revocation, error) {
	entries, err := is.Ledger()
	if err != nil {
		return Revocation{}, err
	}
	for _, s := range serials {
		if !slices.ContainsFunc(entries, func(e Entry) bool { return e.Serial == s }) {
			return Revocation{}, fmt.Errorf("%w: serial %d was not issued by this issuer (see fapp issuer list)", ErrInput, s)
		}
	}
	old, err := is.revocation()
	if err != nil {
		return Revocation{}, err
	}
	var seq uint32 = 1
	all := slices.Clone(serials)
	if old != nil {
		seq = old.Sequence + 1
		all = append(all, old.Serials...)
	}
	r, err := is.key.Revoke(seq, now, all)
	if err != nil {
		return Revocation{}, fmt.Errorf("%w: %v", ErrInput, err)
	}
	b, err := r.MarshalBinary()
	if err != nil {
		return Revocation{}, err
	}
	text := rpcapi.FormatFAPPText(rpcapi.FAPPRevocationPrefix, b)
	if err := writeAtomic(filepath.Join(is.dir, RevocationFile), []byte(text+"\n")); err != nil {
		return Revocation{}, err
	}
	return Revocation{Sequence: r.Sequence, Serials: r.Serials, Text: text}, nil
}

// writeAtomic replaces path with data through a temporary file, so a crash
// leaves the old list or the new one, never half of one.
func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
