package fappissuer

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"meshd.dev/meshd/fapp"
	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/rpcapi"
)

var t0 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

func identity(b byte) string {
	var c protocol.CompactIdentity
	c.SigningKey[0], c.KEMKeyHash[0] = b, b
	return rpcapi.FormatFAPPIdentity(c)
}

func request(b byte) Request {
	return Request{Identity: identity(b), Berufsgruppe: "psychologischer_psychotherapeut", RegistryID: "PTK 1-2",
		ValidFrom: t0, ValidTo: t0.AddDate(2, 0, 0)}
}

// TestIssueAndRevoke: what the issuer signs verifies with its public key
// in a node's trust store, and its revocation list revokes it there.
func TestIssueAndRevoke(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "kammer")
	is, err := Init(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, KeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	if _, err := Init(dir); !errors.Is(err, ErrExists) {
		t.Fatalf("second Init: %v, want ErrExists", err)
	}
	is, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := os.ReadFile(filepath.Join(dir, PubFile))
	key, err := fapp.ParseIssuerKey(strings.TrimSpace(string(pub)))
	if err != nil || key.String() != is.PublicKey() || key.ID().String() != is.ID() {
		t.Fatalf("public key file %q: %v", pub, err)
	}
	trust := fapp.NewTrustStore(key)

	e1, text1, err := is.Issue(request(1))
	if err != nil || e1.Serial != 1 || e1.Berufsgruppe != "PSYCHOLOGISCHER_PSYCHOTHERAPEUT" {
		t.Fatalf("issue: %+v %v", e1, err)
	}
	e2, text2, err := is.Issue(request(2))
	if err != nil || e2.Serial != 2 {
		t.Fatalf("second issue: %+v %v", e2, err)
	}
	cred := func(text string) *fapp.Credential {
		raw, err := rpcapi.ParseFAPPText(rpcapi.FAPPCredentialPrefix, text)
		if err != nil {
			t.Fatal(err)
		}
		c, err := fapp.ParseCredential(raw)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c1, c2 := cred(text1), cred(text2)
	if err := trust.Verify(c1, t0.Add(time.Hour)); err != nil {
		t.Fatalf("issued credential does not verify: %v", err)
	}
	if got := rpcapi.FormatFAPPIdentity(c1.Therapist); got != identity(1) {
		t.Fatalf("credential for %s, want %s", got, identity(1))
	}

	if _, err := is.Revoke([]uint64{7}, t0); !errors.Is(err, ErrInput) {
		t.Fatalf("revoke an unknown serial: %v, want ErrInput", err)
	}
	r, err := is.Revoke([]uint64{1}, t0.Add(time.Hour))
	if err != nil || r.Sequence != 1 {
		t.Fatalf("revoke: %+v %v", r, err)
	}
	apply := func(text string) error {
		raw, err := rpcapi.ParseFAPPText(rpcapi.FAPPRevocationPrefix, text)
		if err != nil {
			t.Fatal(err)
		}
		rv, err := fapp.ParseRevocation(raw)
		if err != nil {
			t.Fatal(err)
		}
		return trust.ApplyRevocation(rv)
	}
	if err := apply(r.Text); err != nil {
		t.Fatal(err)
	}
	if err := trust.Verify(c1, t0.Add(2*time.Hour)); !errors.Is(err, fapp.ErrRevoked) {
		t.Fatalf("revoked credential: %v", err)
	}
	r2, err := is.Revoke([]uint64{2}, t0.Add(2*time.Hour))
	if err != nil || r2.Sequence != 2 || len(r2.Serials) != 2 {
		t.Fatalf("second list: %+v %v", r2, err)
	}
	if err := apply(r2.Text); err != nil || !errors.Is(trust.Verify(c2, t0.Add(3*time.Hour)), fapp.ErrRevoked) {
		t.Fatalf("second list: %v", err)
	}
	entries, err := is.Ledger()
	if err != nil || len(entries) != 2 || !entries[0].Revoked || !entries[1].Revoked {
		t.Fatalf("ledger: %+v %v", entries, err)
	}
	// A new credential after revocations gets a fresh serial.
	if e3, _, err := is.Issue(request(3)); err != nil || e3.Serial != 3 {
		t.Fatalf("third issue: %+v %v", e3, err)
	}
}

func TestIssueBadInput(t *testing.T) {
	is, err := Init(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(r *Request){
		"identity":      func(r *Request) { r.Identity = "fapp-identity:AAAA" },
		"credential":    func(r *Request) { r.Identity = strings.Replace(r.Identity, "identity", "credential", 1) },
		"beruf":         func(r *Request) { r.Berufsgruppe = "HEILPRAKTIKER" },
		"no registry":   func(r *Request) { r.RegistryID = "" },
		"tab":           func(r *Request) { r.RegistryID = "a\tb" },
		"long registry": func(r *Request) { r.RegistryID = strings.Repeat("x", 65) },
		"reversed":      func(r *Request) { r.ValidTo = r.ValidFrom.Add(-time.Hour) },
	} {
		r := request(1)
		mod(&r)
		if _, _, err := is.Issue(r); !errors.Is(err, ErrInput) {
			t.Errorf("%s: %v, want ErrInput", name, err)
		}
	}
	if entries, _ := is.Ledger(); len(entries) != 0 {
		t.Fatalf("refused requests were recorded: %+v", entries)
	}
}

func TestDamagedFiles(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir); !errors.Is(err, ErrNoIssuer) {
		t.Fatalf("Open without key: %v", err)
	}
	if _, err := Init(dir); err != nil {
		t.Fatal(err)
	}
	key, _ := os.ReadFile(filepath.Join(dir, KeyFile))
	key[5] ^= 1
	os.WriteFile(filepath.Join(dir, KeyFile), key, 0o600)
	if _, err := Open(dir); !errors.Is(err, ErrLedger) {
		t.Fatalf("damaged key: %v, want ErrLedger", err)
	}
	key[5] ^= 1
	os.WriteFile(filepath.Join(dir, KeyFile), key, 0o600)
	is, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, LedgerFile), []byte("1\tx\n"), 0o600)
	if _, _, err := is.Issue(request(1)); !errors.Is(err, ErrLedger) {
		t.Fatalf("damaged ledger: %v, want ErrLedger", err)
	}
	os.Remove(filepath.Join(dir, LedgerFile))
	os.WriteFile(filepath.Join(dir, RevocationFile), []byte("fapp-revocation:AAAA\n"), 0o600)
	if _, err := is.Ledger(); !errors.Is(err, ErrLedger) {
		t.Fatalf("damaged revocation list: %v, want ErrLedger", err)
	}
}

// FuzzParseEntry: a damaged ledger line is an error, never a panic, and a
// line that parses has all six fields.
func FuzzParseEntry(f *testing.F) {
	f.Add("1\tPTK 1-2\tPSYCHOTHERAPEUT\t2026-12-01T00:00:00Z\t2028-12-01T00:00:00Z\tfapp-identity:abababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababab")
	f.Add("\t\t\t\t\t")
	f.Fuzz(func(t *testing.T, line string) {
		e, err := parseEntry(line)
		if err == nil && (e.ValidFrom.IsZero() && e.ValidTo.IsZero()) {
			t.Fatalf("%q parsed without times: %+v", line, e)
		}
	})
}
