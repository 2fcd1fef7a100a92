package rpcapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"meshd.dev/meshd/fapp"
	"meshd.dev/meshd/protocol"
)

var (
	therapistKey = strings.Repeat("aa", 32)
	berlin       = time.FixedZone("CET", 3600)
	slotStart    = time.Date(2027, 1, 12, 18, 0, 0, 0, berlin)
)

func exampleProfile() FAPPProfile {
	return FAPPProfile{Name: "A. Beispiel", PLZ: "10115", Verfahren: []string{"verhaltenstherapie"},
		Kostentraeger: []string{"GKV"}, Altersgruppen: []string{"ERWACHSENE"}, Sprachen: []string{"DE", "tr"}}
}

func exampleSlot() FAPPSlot {
	return FAPPSlot{Terminart: "SPRECHSTUNDE", Verfahren: "VERHALTENSTHERAPIE", Start: slotStart, Dauer: 50}
}

func dialEnv(t *testing.T, e *testEnv) *Client {
	t.Helper()
	c, err := Dial(context.Background(), e.srv.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestFAPPBadParams: every kind of bad FAPP input is refused by the server
// with -32602 and a reason naming the field, before the node sees it (the
// fake node's backstop would say "fake:").
func TestFAPPBadParams(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := dialEnv(t, e)
	withSlot := func(f func(s *FAPPSlot)) FAPPPublishParams {
		s := exampleSlot()
		f(&s)
		return FAPPPublishParams{Slots: []FAPPSlot{s}}
	}
	withProfile := func(f func(p *FAPPProfile)) FAPPProfile {
		p := exampleProfile()
		f(&p)
		return p
	}
	publish := func(p FAPPPublishParams) func() error {
		return func() error { _, err := c.FAPPPublish(ctx, p); return err }
	}
	profile := func(p FAPPProfile) func() error {
		return func() error { _, err := c.FAPPProfileSet(ctx, p); return err }
	}
	query := func(q FAPPQueryParams) func() error {
		return func() error { _, err := c.FAPPQuery(ctx, q); return err }
	}
	reserve := func(p FAPPReserveParams) func() error {
		return func() error { _, err := c.FAPPReserve(ctx, p); return err }
	}
	respond := func(p FAPPRespondParams) func() error {
		return func() error { _, err := c.FAPPRespond(ctx, p); return err }
	}
	okID := strings.Repeat("0", 31) + "1"
	okRef := therapistKey + "/1"
	for _, tc := range []struct {
		name string
		call func() error
		text string
	}{
		{"profile without name", profile(withProfile(func(p *FAPPProfile) { p.Name = " " })), "name is required"},
		{"profile name too long", profile(withProfile(func(p *FAPPProfile) { p.Name = strings.Repeat("x", 65) })), "name has 65 bytes"},
		{"profile name control", profile(withProfile(func(p *FAPPProfile) { p.Name = "a\x1bb" })), "control character"},
		{"profile bad PLZ", profile(withProfile(func(p *FAPPProfile) { p.PLZ = "1011" })), "plz"},
		{"profile PLZ not in use", profile(withProfile(func(p *FAPPProfile) { p.PLZ = "00000" })), "not a postal code in use"},
		{"profile unknown Verfahren", profile(withProfile(func(p *FAPPProfile) { p.Verfahren = []string{"HYPNOSE"} })), "verfahren"},
		{"profile no Verfahren", profile(withProfile(func(p *FAPPProfile) { p.Verfahren = nil })), "verfahren is required"},
		{"profile no Kostentraeger", profile(withProfile(func(p *FAPPProfile) { p.Kostentraeger = nil })), "kostentraeger is required"},
		{"profile bad language", profile(withProfile(func(p *FAPPProfile) { p.Sprachen = []string{"deu"} })), "sprachen"},
		{"profile bad gender", profile(withProfile(func(p *FAPPProfile) { p.Geschlecht = "X" })), "geschlecht"},
		{"profile too many focus areas", profile(withProfile(func(p *FAPPProfile) { p.Schwerpunkte = make([]string, 9) })), "schwerpunkte"},
		{"slot without Terminart", publish(withSlot(func(s *FAPPSlot) { s.Terminart = "" })), "terminart is required"},
		{"slot relapse prevention", publish(withSlot(func(s *FAPPSlot) { s.Terminart = "RUECKFALLPROPHYLAXE" })), "terminart"},
		{"slot bad duration", publish(withSlot(func(s *FAPPSlot) { s.Dauer = 45 })), "dauer 45"},
		{"slot without start", publish(withSlot(func(s *FAPPSlot) { s.Start = time.Time{} })), "start is required"},
		{"slot start with seconds", publish(withSlot(func(s *FAPPSlot) { s.Start = s.Start.Add(time.Second) })), "whole minutes"},
		{"MEHRPERSONEN outside SYSTEMISCH", publish(withSlot(func(s *FAPPSlot) { s.Setting = "MEHRPERSONEN" })), "MEHRPERSONEN"},
		{"group without seats", publish(withSlot(func(s *FAPPSlot) { s.Terminart = "GRUPPENTHERAPIE" })), "GRUPPE with 0 seats"},
		{"group with too many seats", publish(withSlot(func(s *FAPPSlot) { s.Terminart, s.Plaetze = "GRUPPENTHERAPIE", 15 })), "plaetze 15"},
		{"seats outside a group", publish(withSlot(func(s *FAPPSlot) { s.Plaetze = 3 })), "only GRUPPE has seats"},
		{"weekly consultation", publish(withSlot(func(s *FAPPSlot) { s.Woechentlich = true })), "weekly SPRECHSTUNDE"},
		{"100-minute consultation", publish(withSlot(func(s *FAPPSlot) { s.Dauer = 100 })), "SPRECHSTUNDE of 100 minutes"},
		{"published as VERGEBEN", publish(withSlot(func(s *FAPPSlot) { s.Status = "VERGEBEN" })), "a published slot is FREI"},
		{"too many slots", publish(FAPPPublishParams{Slots: make([]FAPPSlot, fapp.MaxSlots+1)}), "at most 32"},
		{"duplicate slot IDs", publish(FAPPPublishParams{Slots: []FAPPSlot{
			withSlot(func(s *FAPPSlot) { s.ID = 4 }).Slots[0], withSlot(func(s *FAPPSlot) { s.ID = 4 }).Slots[0]}}), "id 4 appears twice"},
		{"withdraw slot 0", func() error { _, err := c.FAPPWithdraw(ctx, FAPPWithdrawParams{Slots: []uint16{0}}); return err }, "0 is no slot ID"},
		{"query without prefix", query(FAPPQueryParams{}), "plz_prefix is required"},
		{"query letters", query(FAPPQueryParams{PLZPrefix: "1a"}), "plz_prefix"},
		{"query prefix nobody uses", query(FAPPQueryParams{PLZPrefix: "000"}), "plz_prefix"},
		{"query unknown Kostentraeger", query(FAPPQueryParams{PLZPrefix: "10", Kostentraeger: []string{"AOK"}}), "kostentraeger"},
		{"query bad window", query(FAPPQueryParams{PLZPrefix: "10", Zeitfenster: []string{"abends"}}), "zeitfenster"},
		{"query too many windows", query(FAPPQueryParams{PLZPrefix: "10", Zeitfenster: make([]string, 9)}), "zeitfenster: 9 windows"},
		{"query reversed times", query(FAPPQueryParams{PLZPrefix: "10", Fruehestens: slotStart, Spaetestens: slotStart.Add(-time.Hour)}), "before fruehestens"},
		{"query limit", query(FAPPQueryParams{PLZPrefix: "10", Limit: 1001}), "limit 1001"},
		{"reserve without slot", reserve(FAPPReserveParams{}), "slot is required"},
		{"reserve bad ref", reserve(FAPPReserveParams{Slot: "abc"}), "<therapist key>/<slot ID>"},
		{"reserve slot 0", reserve(FAPPReserveParams{Slot: therapistKey + "/0"}), "1 to 65535"},
		{"reserve slot +1", reserve(FAPPReserveParams{Slot: therapistKey + "/+1"}), "1 to 65535"},
		{"reserve oversized contact", reserve(FAPPReserveParams{Slot: okRef, Kontakt: strings.Repeat("x", fapp.MaxKontaktLen+1)}), "kontakt has 257 bytes"},
		{"reserve control character", reserve(FAPPReserveParams{Slot: okRef, PTV11: "a\x00b"}), "ptv11 contains a control character"},
		{"respond bad id", respond(FAPPRespondParams{ID: "xyz", Action: FAPPConfirm}), "id:"},
		{"respond without action", respond(FAPPRespondParams{ID: okID}), "action is required"},
		{"respond unknown action", respond(FAPPRespondParams{ID: okID, Action: "maybe"}), `action "maybe"`},
		{"confirm with until", respond(FAPPRespondParams{ID: okID, Action: FAPPConfirm, Until: slotStart}), "until is only"},
		{"cancel without id", func() error { _, err := c.FAPPCancel(ctx, FAPPCancelParams{}); return err }, "id is required"},
		{"reservations bad role", func() error {
			_, err := c.FAPPReservations(ctx, FAPPReservationsParams{Role: "doctor"})
			return err
		}, `role "doctor"`},
		{"reservations bad state", func() error {
			_, err := c.FAPPReservations(ctx, FAPPReservationsParams{States: []string{"OFFEN"}})
			return err
		}, "states"},
		{"follow nothing", func() error { _, err := c.FAPPFollow(ctx); return err }, "regions is required"},
		{"follow 3 digits", func() error { _, err := c.FAPPFollow(ctx, "101"); return err }, "regions"},
		{"unfollow unused region", func() error { _, err := c.FAPPUnfollow(ctx, "00"); return err }, "no postal code in use"},
		{"import a revocation as credential", func() error {
			_, err := c.FAPPCredentialImport(ctx, "fapp-revocation:AAAA")
			return err
		}, `starting with "fapp-credential:"`},
		{"import garbage credential", func() error { _, err := c.FAPPCredentialImport(ctx, "fapp-credential:AAAA"); return err }, "credential"},
		{"import garbage revocation", func() error { _, err := c.FAPPRevocationImport(ctx, "fapp-revocation:!!"); return err }, "base64url"},
	} {
		err := tc.call()
		var ae *Error
		switch {
		case !errors.As(err, &ae) || ae.Code != CodeInvalidParams:
			t.Errorf("%s: %v, want -32602", tc.name, err)
		case strings.Contains(ae.Message, "fake:"):
			t.Errorf("%s: the server let it through to the node: %s", tc.name, ae.Message)
		case !strings.Contains(ae.Message, tc.text):
			t.Errorf("%s: %q does not mention %q", tc.name, ae.Message, tc.text)
		}
	}
}

// TestFAPPFlow walks a therapist and a patient (one fake node) through the
// whole pathway over the client, including the event and the refusals.
func TestFAPPFlow(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := dialEnv(t, e)
	events, err := c.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}

	if _, err := c.FAPPPublish(ctx, FAPPPublishParams{Slots: []FAPPSlot{exampleSlot()}}); !errors.Is(err, ErrRefused) {
		t.Fatalf("publish before a profile: %v, want refused", err)
	}
	info, err := c.FAPPProfileSet(ctx, exampleProfile())
	if err != nil || info.Therapist != therapistKey || info.Profile == nil || info.Sequence != 1 {
		t.Fatalf("profile set: %+v %v", info, err)
	}
	if p := info.Profile; strings.Join(p.Verfahren, ",") != "VERHALTENSTHERAPIE" || strings.Join(p.Sprachen, ",") != "de,tr" {
		t.Fatalf("the node got names as typed, not canonical: %+v", p)
	}
	if got, err := c.FAPPProfile(ctx); err != nil || got.Profile.Name != "A. Beispiel" {
		t.Fatalf("profile get: %+v %v", got, err)
	}
	other := exampleSlot()
	other.Verfahren = "ANALYTISCH"
	if _, err := c.FAPPPublish(ctx, FAPPPublishParams{Slots: []FAPPSlot{other}}); !errors.Is(err, ErrInvalidParams) {
		t.Fatalf("slot outside the profile's Verfahren: %v", err)
	}
	offer, err := c.FAPPPublish(ctx, FAPPPublishParams{Slots: []FAPPSlot{exampleSlot(), exampleSlot()}})
	if err != nil || len(offer.Slots) != 2 || offer.Slots[0].ID != 1 || offer.Slots[0].Status != "FREI" || offer.Slots[0].Setting != "EINZEL" {
		t.Fatalf("publish: %+v %v", offer, err)
	}
	if _, err := c.FAPPWithdraw(ctx, FAPPWithdrawParams{Slots: []uint16{9}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("withdraw unknown slot: %v, want not found", err)
	}
	if offer, err = c.FAPPWithdraw(ctx, FAPPWithdrawParams{Slots: []uint16{2}}); err != nil || len(offer.Slots) != 1 {
		t.Fatalf("withdraw: %+v %v", offer, err)
	}

	res, err := c.FAPPQuery(ctx, FAPPQueryParams{PLZPrefix: "10", Verfahren: []string{"VERHALTENSTHERAPIE"}, Kostentraeger: []string{"gkv"}})
	if err != nil || len(res.Matches) != 1 || res.Source != "local" {
		t.Fatalf("query: %+v %v", res, err)
	}
	if res, err := c.FAPPQuery(ctx, FAPPQueryParams{PLZPrefix: "10", Kostentraeger: []string{"PKV"}}); err != nil || len(res.Matches) != 0 {
		t.Fatalf("query PKV: %+v %v", res, err)
	}
	m := res.Matches[0]
	if m.Ref != therapistKey+"/1" || !m.Slot.Start.Equal(slotStart) || m.Verfahren[0] != "VERHALTENSTHERAPIE" {
		t.Fatalf("match %+v", m)
	}
	pat, err := c.FAPPReserve(ctx, FAPPReserveParams{Slot: m.Ref, Kontakt: "p@example.org"})
	if err != nil || pat.State != "ANGEFRAGT" || pat.Role != FAPPRolePatient {
		t.Fatalf("reserve: %+v %v", pat, err)
	}
	if _, err := c.FAPPReserve(ctx, FAPPReserveParams{Slot: therapistKey + "/7"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("reserve unknown slot: %v", err)
	}
	ev := <-events
	if ev.Kind != EventFAPPReservation || ev.FAPPReservation == nil || ev.FAPPReservation.Role != FAPPRoleTherapist {
		t.Fatalf("event %+v", ev)
	}
	list, err := c.FAPPReservations(ctx, FAPPReservationsParams{Role: FAPPRoleTherapist, States: []string{"angefragt"}})
	if err != nil || len(list) != 1 || list[0].Kontakt != "p@example.org" {
		t.Fatalf("reservations: %+v %v", list, err)
	}
	if _, err := c.FAPPRespond(ctx, FAPPRespondParams{ID: strings.Repeat("f", 32), Action: FAPPConfirm}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("respond unknown: %v", err)
	}
	if _, err := c.FAPPRespond(ctx, FAPPRespondParams{ID: pat.ID, Action: FAPPConfirm, Nachricht: "Willkommen"}); err != nil {
		t.Fatal(err)
	}
	ev = <-events
	if r := ev.FAPPReservation; r == nil || r.Role != FAPPRolePatient || r.State != "BESTAETIGT" || !r.Signed || r.Nachricht != "Willkommen" {
		t.Fatalf("patient's event %+v", ev)
	}
	if offer, _ := c.FAPPSlots(ctx); offer.Slots[0].Status != "VERGEBEN" {
		t.Fatalf("slot after confirmation: %+v", offer.Slots)
	}
	if _, err := c.FAPPRespond(ctx, FAPPRespondParams{ID: pat.ID, Action: FAPPDecline}); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "transition not allowed") {
		t.Fatalf("decline after confirm: %v, want refused", err)
	}
	if r, err := c.FAPPCancel(ctx, FAPPCancelParams{ID: pat.ID}); err != nil || r.State != "STORNIERT_PATIENT" {
		t.Fatalf("cancel: %+v %v", r, err)
	}
	if _, err := c.FAPPCancel(ctx, FAPPCancelParams{ID: pat.ID}); !errors.Is(err, ErrRefused) {
		t.Fatalf("cancel twice: %v, want refused", err)
	}

	regs, err := c.FAPPFollow(ctx, "10", "12")
	if err != nil || len(regs.Followed) != 2 {
		t.Fatalf("follow: %+v %v", regs, err)
	}
	if regs, err = c.FAPPUnfollow(ctx, "12"); err != nil || len(regs.Followed) != 1 || regs.Followed[0].Region != "10" {
		t.Fatalf("unfollow: %+v %v", regs, err)
	}
	if regs, err = c.FAPPRegions(ctx); err != nil || len(regs.Followed) != 1 {
		t.Fatalf("regions: %+v %v", regs, err)
	}
	if _, err := c.FAPPPublish(ctx, FAPPPublishParams{Slots: []FAPPSlot{exampleSlot()}}); err != nil {
		t.Fatal(err)
	}
	ev = <-events // the therapist's side of the cancellation
	if ev.Kind != EventFAPPReservation || ev.FAPPReservation.State != "STORNIERT_PATIENT" {
		t.Fatalf("cancellation event %+v", ev)
	}
	if ev := <-events; ev.Kind != EventFAPPIndex || ev.FAPPRegion != "10" {
		t.Fatalf("event after a publish in a followed region: %+v", ev)
	}
}

// TestFAPPCredentials: status without a credential gives the identity an
// issuer needs; an imported credential verifies with the trusted issuer;
// a revocation list revokes it; an older list cannot un-revoke it.
func TestFAPPCredentials(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := dialEnv(t, e)
	st, err := c.FAPPCredentialStatus(ctx)
	if err != nil || st.Status != FAPPCredMissing || st.Therapist != therapistKey {
		t.Fatalf("status: %+v %v", st, err)
	}
	me, err := ParseFAPPIdentity(st.Identity)
	if err != nil || me != e.node.fa.me {
		t.Fatalf("identity %q: %v", st.Identity, err)
	}
	is, err := fapp.NewIssuer(bytes.NewReader(bytes.Repeat([]byte{7}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	issue := func(serial uint64, for_ [64]byte) string {
		var id = me
		copy(id.SigningKey[:], for_[:32])
		cred, err := is.Issue(fapp.Credential{Serial: serial, Therapist: id, Berufsgruppe: fapp.Psychotherapeut,
			RegistryID: "PTK-B 4711", ValidFrom: from, ValidTo: from.AddDate(2, 0, 0)})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := cred.MarshalBinary()
		return FormatFAPPText(FAPPCredentialPrefix, b)
	}
	var mine, others [64]byte
	copy(mine[:], me.SigningKey[:])
	others[0] = 1
	if _, err := c.FAPPCredentialImport(ctx, issue(5, others)); !errors.Is(err, ErrInvalidParams) {
		t.Fatalf("credential for other keys: %v", err)
	}
	// A wrapped paste still parses.
	text := issue(5, mine)
	st, err = c.FAPPCredentialImport(ctx, "  "+text[:40]+"\n"+text[40:]+"\n")
	if err != nil || st.Status != FAPPCredValid || st.Serial != 5 || st.RegistryID != "PTK-B 4711" || st.Berufsgruppe != "PSYCHOTHERAPEUT" {
		t.Fatalf("import: %+v %v", st, err)
	}
	revoke := func(seq uint32, serials ...uint64) error {
		r, err := is.Revoke(seq, from, serials)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := r.MarshalBinary()
		_, err = c.FAPPRevocationImport(ctx, FormatFAPPText(FAPPRevocationPrefix, b))
		return err
	}
	if err := revoke(2, 5, 9); err != nil {
		t.Fatal(err)
	}
	if st, _ = c.FAPPCredentialStatus(ctx); st.Status != FAPPCredRevoked {
		t.Fatalf("after revocation: %+v", st)
	}
	if err := revoke(1); !errors.Is(err, ErrRefused) {
		t.Fatalf("older list: %v, want refused", err)
	}
	issuers, err := c.FAPPIssuers(ctx)
	if err != nil || len(issuers) != 1 || issuers[0].Key != exampleIssuerKey || issuers[0].RevocationSequence != 2 || issuers[0].Revoked != 2 {
		t.Fatalf("issuers: %+v %v", issuers, err)
	}
}

// plainNode is a Node without FAPP: embedding the interface hides the fake
// node's FAPP methods.
type plainNode struct{ Node }

// TestFAPPNeedsFAPPNode: a daemon without FAPP answers no fapp method and
// does not document them.
func TestFAPPNeedsFAPPNode(t *testing.T) {
	dir, err := os.MkdirTemp("", "rpc")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	srv, err := NewServer(plainNode{newFakeNode()}, ServerOptions{SocketPath: SocketPath(dir), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := Dial(context.Background(), srv.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.FAPPRegions(context.Background()); err == nil || !strings.Contains(err.Error(), "-32601") {
		t.Fatalf("fapp.regions without FAPP: %v, want method not found", err)
	}
	doc, err := c.Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(doc.Methods)
	if bytes.Contains(raw, []byte(`"fapp.`)) {
		t.Fatalf("rpc.discover lists fapp methods on a node without FAPP")
	}
	if _, err := c.Info(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestFAPPText(t *testing.T) {
	b := []byte{1, 2, 3, 250}
	s := FormatFAPPText(FAPPCredentialPrefix, b)
	if got, err := ParseFAPPText(FAPPCredentialPrefix, " "+s+"\n"); err != nil || !bytes.Equal(got, b) {
		t.Fatalf("round trip %q: %x %v", s, got, err)
	}
	for _, bad := range []string{"", FAPPCredentialPrefix, "fapp-credential:AQID+g", "fapp-credential:AQID-g==", "fapp-credential:AQID-h",
		FAPPRevocationPrefix + "AQID-g", "AQID-g", strings.Repeat("A", MaxFAPPText+1)} {
		if _, err := ParseFAPPText(FAPPCredentialPrefix, bad); !errors.Is(err, ErrBadFAPPText) {
			t.Errorf("ParseFAPPText(%.40q) = %v, want ErrBadFAPPText", bad, err)
		}
	}
	var c protocol.CompactIdentity
	c.SigningKey[3], c.KEMKeyHash[31] = 7, 9
	id := FormatFAPPIdentity(c)
	if got, err := ParseFAPPIdentity(" " + id[:50] + "\n" + id[50:]); err != nil || got != c {
		t.Errorf("identity round trip %q: %v %v", id, got, err)
	}
	for _, bad := range []string{id[:len(id)-2], strings.Replace(id, "fapp-identity:", "fapp-credential:", 1), id + "00", FormatFAPPText(FAPPIdentityPrefix, make([]byte, 64))} {
		if _, err := ParseFAPPIdentity(bad); !errors.Is(err, ErrBadFAPPText) {
			t.Errorf("ParseFAPPIdentity(%q) = %v, want ErrBadFAPPText", bad, err)
		}
	}
}

func FuzzParseFAPPText(f *testing.F) {
	f.Add("fapp-credential:AQID-g")
	f.Add("fapp-identity:" + strings.Repeat("ab", 64))
	f.Add(" fapp-credential:AQ\nID ")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseFAPPText(FAPPCredentialPrefix, s)
		if err != nil {
			if !errors.Is(err, ErrBadFAPPText) {
				t.Fatalf("error %v does not wrap ErrBadFAPPText", err)
			}
			return
		}
		// What parses is canonical: formatting gives the input without
		// its white space.
		if again := FormatFAPPText(FAPPCredentialPrefix, b); again != strings.Join(strings.Fields(s), "") {
			t.Fatalf("%q parsed, formats as %q", s, again)
		}
	})
}

func FuzzParseFAPPIdentity(f *testing.F) {
	f.Add("fapp-identity:" + strings.Repeat("ab", 64))
	f.Add("fapp-identity:" + strings.Repeat("AB", 64))
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseFAPPIdentity(s)
		if err != nil {
			if !errors.Is(err, ErrBadFAPPText) {
				t.Fatalf("error %v does not wrap ErrBadFAPPText", err)
			}
			return
		}
		if again, err := ParseFAPPIdentity(FormatFAPPIdentity(c)); err != nil || again != c {
			t.Fatalf("%q parsed as %v, does not round-trip: %v", s, c, err)
		}
	})
}

func FuzzParseFAPPSlotRef(f *testing.F) {
	f.Add(therapistKey + "/1")
	f.Add(therapistKey + "/65535")
	f.Add(therapistKey + "/007")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseFAPPSlotRef(s)
		if err != nil {
			if !errors.Is(err, ErrFAPPParams) {
				t.Fatalf("error %v does not wrap ErrFAPPParams", err)
			}
			return
		}
		if r.Slot == 0 || !strings.EqualFold(FormatFAPPSlotRef(r), s) {
			t.Fatalf("%q parsed as %v", s, r)
		}
	})
}
