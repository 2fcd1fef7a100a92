package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"meshd.dev/meshd/rpcapi"
)

// The FAPP end-to-end test drives real meshd daemons with the real fapp
// binary (apps/fapp), as a therapist, a patient and an issuer would.

var (
	fappOnce sync.Once
	fappBin  string
	fappErr  error
)

// fappBinary builds apps/fapp once per test binary, next to meshd.
func fappBinary(t testing.TB) string {
	t.Helper()
	binaries(t) // makes binDir
	fappOnce.Do(func() {
		gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
		out, err := exec.Command(gobin, "build", "-o", binDir, "meshd.dev/meshd/apps/fapp").CombinedOutput()
		if err != nil {
			fappErr = fmt.Errorf("go build apps/fapp: %v\n%s", err, out)
		}
		fappBin = filepath.Join(binDir, "fapp")
	})
	if fappErr != nil {
		t.Fatal(fappErr)
	}
	return fappBin
}

// fappRun runs the fapp binary with args (no data directory added) and
// returns its standard output; it fails the test on a non-zero exit.
func fappRun(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command(fappBinary(t), args...)
	cmd.Env = append(os.Environ(), "LANG=C", "MESHD_DATA_DIR=")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("fapp %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// fapp runs the fapp binary against this daemon with --json and decodes
// its output into v (nil to discard).
func (p *proc) fapp(v any, args ...string) {
	p.t.Helper()
	out := fappRun(p.t, append([]string{"--data-dir", p.dir, "--json", "--timeout", "90s"}, args...)...)
	if v != nil {
		if err := json.Unmarshal([]byte(out), v); err != nil {
			p.t.Fatalf("%s: fapp %s printed %q: %v", p.name, strings.Join(args, " "), out, err)
		}
	}
}

// writeConfig writes the daemon's config.toml before it starts.
func (p *proc) writeConfig(toml string) {
	p.t.Helper()
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.dir, "config.toml"), []byte(toml), 0o600); err != nil {
		p.t.Fatal(err)
	}
}

// waitReservation returns the first fapp-reservation event of id in state.
func (p *proc) waitReservation(ctx context.Context, role, state string) rpcapi.FAPPReservation {
	p.t.Helper()
	ev := p.waitEvent(ctx, role+" reservation "+state, func(ev rpcapi.Event) bool {
		r := ev.FAPPReservation
		return ev.Kind == rpcapi.EventFAPPReservation && r != nil && r.Role == role && r.State == state
	})
	return *ev.FAPPReservation
}

// waitIndex re-runs q on the daemon on each fapp-index event until done
// accepts the result.
func (p *proc) waitIndex(ctx context.Context, what string, q rpcapi.FAPPQueryParams, done func(rpcapi.FAPPQueryResult) bool) rpcapi.FAPPQueryResult {
	p.t.Helper()
	for {
		res, err := p.client.FAPPQuery(ctx, q)
		if err != nil {
			p.t.Fatalf("%s: fapp.query: %v", p.name, err)
		}
		if done(res) {
			return res
		}
		p.waitEvent(ctx, what, func(ev rpcapi.Event) bool { return ev.Kind == rpcapi.EventFAPPIndex })
	}
}

// filesContain reports the files under dir whose bytes contain s.
func filesContain(t *testing.T, dir, s string) []string {
	var hits []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Type()&fs.ModeSocket != 0 {
			return nil
		}
		if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, []byte(s)) {
			hits = append(hits, path)
		}
		return nil
	})
	return hits
}

// TestEndToEndFAPP: an issuer certifies a therapist; the therapist's
// daemon T publishes two slots; a patient daemon P two hops away (P - R -
// T, R a FAPP relay) that follows region 10 finds the consultation by
// Verfahren, Kostentraeger and PLZ prefix from its own index and reserves
// it while T is offline, so the request waits in custody; T comes back,
// receives it and confirms; P sees BESTAETIGT with the therapist's
// signature; the slot is re-announced as VERGEBEN and drops out of P's
// search. The patient's contact never appears in the relay's files or in
// any log.
func TestEndToEndFAPP(t *testing.T) {
	endToEnd(t, "builds binaries and runs three daemons")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	step := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 90*time.Second) }

	// The issuer (a chamber) creates its key; every node trusts it.
	issuerDir := filepath.Join(t.TempDir(), "kammer")
	var issuer struct{ Key string }
	if err := json.Unmarshal([]byte(fappRun(t, "--json", "issuer", "--dir", issuerDir, "init")), &issuer); err != nil {
		t.Fatal(err)
	}
	th, relay, pat := newProc(t, "T"), newProc(t, "R"), newProc(t, "P")
	trust := fmt.Sprintf("trusted_issuers = [%q]\n", issuer.Key)
	th.writeConfig("[fapp]\nepoch = \"1s\"\n" + trust)
	relay.writeConfig("[fapp]\nrelay = true\n" + trust)
	pat.writeConfig("[fapp]\nepoch = \"1s\"\nregions = [\"10\"]\n" + trust)

	sctx, done := step()
	for _, p := range []*proc{th, relay, pat} {
		p.start(sctx)
		defer func(p *proc) {
			if p.cmd.ProcessState == nil {
				p.cmd.Process.Kill()
				<-p.exited
			}
		}(p)
	}
	rAddr := relay.info.ListenAddrs[0]
	th.ctl("connect", rAddr)
	pat.ctl("connect", rAddr)
	th.waitPeer(sctx, relay.info.Address)
	pat.waitPeer(sctx, relay.info.Address)
	done()

	// 1. The therapist gets a credential for T's keys and publishes.
	sctx, done = step()
	var cred rpcapi.FAPPCredentialStatus
	th.fapp(&cred, "therapist", "credential")
	if cred.Status != rpcapi.FAPPCredMissing || !strings.HasPrefix(cred.Identity, rpcapi.FAPPIdentityPrefix) {
		t.Fatalf("credential before import: %+v", cred)
	}
	text := strings.TrimSpace(fappRun(t, "issuer", "--dir", issuerDir, "issue", "--identity", cred.Identity,
		"--beruf", "PSYCHOLOGISCHER_PSYCHOTHERAPEUT", "--registry-id", "PTK-BE 4711", "--valid-to", "2036-01-01"))
	th.fapp(&cred, "therapist", "credential", "import", text)
	if cred.Status != rpcapi.FAPPCredValid {
		t.Fatalf("credential after import: %+v", cred)
	}
	th.fapp(nil, "therapist", "profile", "--name", "Praxis Dr. Beispiel", "--plz", "10115", "--verfahren", "VERHALTENSTHERAPIE",
		"--kostentraeger", "GKV,PKV", "--altersgruppen", "ERWACHSENE", "--sprachen", "de,en")
	start := time.Now().In(time.UTC).Add(72 * time.Hour).Truncate(time.Hour)
	th.fapp(nil, "therapist", "publish", "--terminart", "SPRECHSTUNDE", "--verfahren", "VERHALTENSTHERAPIE",
		"--start", start.Format(time.RFC3339), "--dauer", "50")
	var offer rpcapi.FAPPOffer
	th.fapp(&offer, "therapist", "publish", "--terminart", "THERAPIEPLATZ_KZT", "--verfahren", "VERHALTENSTHERAPIE",
		"--start", start.Add(24*time.Hour).Format(time.RFC3339), "--dauer", "50", "--woechentlich", "--bis", start.Add(24*time.Hour+12*7*24*time.Hour).Format(time.RFC3339))
	if len(offer.Slots) != 2 {
		t.Fatalf("own offer %+v", offer)
	}
	done()

	// 2. The patient finds the consultation two hops away, from its own
	// index (region 10 is followed: the search sends nothing).
	sctx, done = step()
	q := rpcapi.FAPPQueryParams{PLZPrefix: "101", Verfahren: []string{"VERHALTENSTHERAPIE"}, Kostentraeger: []string{"GKV"}, Terminart: []string{"SPRECHSTUNDE"}}
	res := pat.waitIndex(sctx, "the announce and profile at P", q, func(r rpcapi.FAPPQueryResult) bool {
		return len(r.Matches) == 1 && r.Matches[0].Name != "" && r.Matches[0].Zertifiziert
	})
	var found rpcapi.FAPPQueryResult
	pat.fapp(&found, "patient", "search", "--plz", "101", "--verfahren", "verhaltenstherapie", "--kostentraeger", "gkv", "--terminart", "SPRECHSTUNDE")
	m := found.Matches[0]
	if found.Source != "local" || m.Ref != res.Matches[0].Ref || m.Name != "Praxis Dr. Beispiel" || m.PLZ != "10115" || !m.Slot.Start.Equal(start) {
		t.Fatalf("search result %+v", found)
	}
	done()

	// 3. T goes offline; P reserves; the request waits in custody.
	sctx, done = step()
	th.stop(sctx)
	const kontakt = "patientin-e2e@example.org"
	var req rpcapi.FAPPReservation
	pat.fapp(&req, "patient", "reserve", m.Ref, "--kontakt", kontakt)
	if req.State != "ANGEFRAGT" || req.Role != rpcapi.FAPPRolePatient {
		t.Fatalf("reservation %+v", req)
	}
	custody := 0
	for _, p := range []*proc{pat, relay} {
		st, err := p.client.StoreStats(sctx)
		if err != nil {
			t.Fatal(err)
		}
		custody += st.Custody
	}
	if custody == 0 {
		t.Fatalf("T is offline and no node holds the reservation request in custody")
	}
	done()

	// 4. T returns, receives the request and confirms.
	sctx, done = step()
	th.start(sctx)
	th.ctl("connect", rAddr)
	got := th.waitReservation(sctx, rpcapi.FAPPRoleTherapist, "ANGEFRAGT")
	if got.ID != req.ID || got.Kontakt != kontakt {
		t.Fatalf("T received %+v, want %s from %s", got, req.ID, kontakt)
	}
	var confirmed rpcapi.FAPPReservation
	th.fapp(&confirmed, "therapist", "confirm", req.ID, "--nachricht", "Bitte klingeln: Praxis 2. OG")
	if confirmed.State != "BESTAETIGT" {
		t.Fatalf("confirm: %+v", confirmed)
	}
	var seen rpcapi.FAPPReservation
	pat.fapp(&seen, "patient", "wait", req.ID, "BESTAETIGT", "ABGELEHNT")
	if seen.State != "BESTAETIGT" || !seen.Signed || seen.Nachricht != "Bitte klingeln: Praxis 2. OG" {
		t.Fatalf("patient sees %+v", seen)
	}
	done()

	// 5. The slot is re-announced as VERGEBEN: it leaves P's search, the
	// weekly place stays.
	sctx, done = step()
	pat.waitIndex(sctx, "the VERGEBEN re-announce at P", q, func(r rpcapi.FAPPQueryResult) bool { return len(r.Matches) == 0 })
	var slots rpcapi.FAPPOffer
	th.fapp(&slots, "therapist", "slots")
	for _, s := range slots.Slots {
		if want := map[bool]string{true: "VERGEBEN", false: "FREI"}[s.Terminart == "SPRECHSTUNDE"]; s.Status != want {
			t.Errorf("T's slot %d (%s) is %s, want %s", s.ID, s.Terminart, s.Status, want)
		}
	}
	all, err := pat.client.FAPPQuery(sctx, rpcapi.FAPPQueryParams{PLZPrefix: "10"})
	if err != nil || len(all.Matches) != 1 || all.Matches[0].Slot.Terminart != "THERAPIEPLATZ_KZT" {
		t.Fatalf("P's free slots after the confirmation: %+v %v", all, err)
	}
	done()

	sctx, done = step()
	defer done()
	for _, p := range []*proc{th, relay, pat} {
		p.stop(sctx)
	}
	// Privacy: the relay stored and logged nothing of the patient's, and
	// neither daemon logged the contact.
	if hits := filesContain(t, relay.dir, kontakt); len(hits) > 0 {
		t.Errorf("the relay's files hold the patient's contact in clear: %v", hits)
	}
	for _, p := range []*proc{th, relay, pat} {
		if strings.Contains(p.logText(), kontakt) {
			t.Errorf("%s logged the patient's contact", p.name)
		}
	}
}
