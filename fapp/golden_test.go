package fapp

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// goldenVectors builds every FAPP format from fixed seeds. The bytes are
// committed under testdata/golden, so a change to an encoding shows up as a
// failing test and must be made on purpose (go test ./fapp -run Golden
// -update, review the diff, update docs/fapp.md).
func goldenVectors(t *testing.T) map[string][]byte {
	t.Helper()
	must := func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	th, patient := testIdentity(t, 1), testIdentity(t, 2)
	is := testIssuer(t, 50)
	v := map[string][]byte{}
	a := testAnnounce(t, 4)
	a.Slots[3] = Slot{ID: 9, Terminart: Gruppentherapie, Verfahren: Systemisch, Setting: Gruppe, Modalitaet: Video,
		Voraussetzung: VoraussetzungPTV11, Start: BerlinTime(2027, 1, 5, 17, 0), Dauer: 100, Woechentlich: true,
		Bis: BerlinTime(2027, 3, 30, 17, 0), Plaetze: 6, Status: SlotGehalten}
	v["announce"] = signed(t, 1, a)
	w := testAnnounce(t, 0)
	w.Withdrawn, w.Sequence = true, 2
	v["announce-withdrawal"] = signed(t, 1, w)
	_, v["profile"] = testProfile(t, is, 1, 7)
	v["credential"] = must(testCredential(t, is, 1, 7).MarshalBinary())
	r, err := is.Revoke(3, testNow, []uint64{7, 12})
	if err != nil {
		t.Fatal(err)
	}
	v["revocation"] = must(r.MarshalBinary())
	v["issuer-key-file"] = must(is.MarshalBinary())

	slot := SlotRef{Therapist: TherapistKeyOf(th.Compact()), Slot: 1}
	q := &Request{ID: RequestID{0xa0, 1}, Slot: slot, Start: BerlinTime(2026, 12, 3, 18, 0), Patient: patient.Public(),
		Created: testNow, Kontakt: "Signal +49 151 0000000", PTV11: "PTV11 2026-11-30"}
	if q.Stamp, err = MintStamp(slot, q.ID, 8, 0, testNow, 0); err != nil {
		t.Fatal(err)
	}
	v["request"] = must(q.MarshalBinary())
	v["reservation-record"] = must((&Reservation{Request: *q, State: Gehalten, HoldUntil: testNow.Add(time.Hour),
		Received: testNow, Updated: testNow}).MarshalBinary())
	resp := &Response{ID: q.ID, Slot: slot, State: Gehalten, HoldUntil: testNow.Add(48 * time.Hour), Created: testNow, Nachricht: "bis Freitag"}
	if err := resp.Sign(th); err != nil {
		t.Fatal(err)
	}
	v["response"] = must(resp.MarshalBinary())
	c := &Cancel{ID: q.ID, Slot: slot, By: StorniertPatient, Created: testNow}
	if err := c.Sign(patient); err != nil {
		t.Fatal(err)
	}
	v["cancel"] = must(c.MarshalBinary())
	v["remote-query"] = must(testRemoteQuery(t).MarshalBinary())
	v["answer"] = must((&QueryAnswer{ID: QueryID{7}, Announces: [][]byte{v["announce"]}, Profiles: [][]byte{v["profile"]}}).MarshalBinary())
	return v
}

func TestGolden(t *testing.T) {
	dir := filepath.Join("testdata", "golden")
	for name, got := range goldenVectors(t) {
		path := filepath.Join(dir, name+".hex")
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(wrapHex(got)), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%s: %v (run with -update to create it)", name, err)
		}
		want, err := hex.DecodeString(strings.Join(strings.Fields(string(raw)), ""))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: encoding changed (%d bytes, golden %d); if intended, run with -update and review", name, len(got), len(want))
		}
	}
}

// TestGoldenDecode decodes the committed vectors with the decoders alone,
// what another implementation would test against.
func TestGoldenDecode(t *testing.T) {
	read := func(name string) []byte {
		raw, err := os.ReadFile(filepath.Join("testdata", "golden", name+".hex"))
		if err != nil {
			t.Fatal(err)
		}
		b, err := hex.DecodeString(strings.Join(strings.Fields(string(raw)), ""))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, err := ParseSlotAnnounce(read("announce"), testNow, 0)
	if err != nil || len(a.Slots) != 4 || a.Slots[3].Plaetze != 6 || a.Slots[3].Occurrences() != 13 {
		t.Fatalf("announce: %+v %v", a, err)
	}
	if len(read("announce")) != 172 {
		t.Fatalf("the golden 4-slot announce is %d bytes", len(read("announce")))
	}
	if w, err := ParseSlotAnnounce(read("announce-withdrawal"), testNow, 0); err != nil || !w.Withdrawn {
		t.Fatalf("withdrawal: %v", err)
	}
	p, err := ParseProfile(read("profile"))
	if err != nil || ProfileRefOf(read("profile")) == (ProfileRef{}) {
		t.Fatalf("profile: %v", err)
	}
	is, err := ParseIssuer(read("issuer-key-file"))
	if err != nil {
		t.Fatal(err)
	}
	trust := NewTrustStore(is.PublicKey())
	if err := trust.Verify(&p.Credential, testNow); err != nil {
		t.Fatalf("golden credential: %v", err)
	}
	r, err := ParseRevocation(read("revocation"))
	if err != nil || trust.ApplyRevocation(r) != nil || !errors.Is(trust.Verify(&p.Credential, testNow), ErrRevoked) {
		t.Fatalf("revocation: %v", err)
	}
	if r, err := ParseReservation(read("reservation-record")); err != nil || r.State != Gehalten {
		t.Fatalf("reservation record: %v", err)
	}
	for _, name := range []string{"request", "response", "cancel", "remote-query", "answer"} {
		if _, err := ParseMessage(read(name)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

func wrapHex(b []byte) string {
	h := hex.EncodeToString(b)
	var sb strings.Builder
	for i := 0; i < len(h); i += 64 {
		sb.WriteString(h[i:min(i+64, len(h))])
		sb.WriteByte('\n')
	}
	return sb.String()
}
