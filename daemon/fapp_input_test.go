package daemon

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"slices"
	"testing"
	"time"

	"meshd.dev/meshd/fapp"
	"meshd.dev/meshd/rpcapi"
)

// openFAPPNode opens a node (no loop) following region 10 and trusting
// is, for feeding FAPP handlers directly.
func openFAPPNode(tb testing.TB, is *fapp.Issuer, clk *testClock) *Node {
	tb.Helper()
	n, err := Open(context.Background(), fappConfig(tb, is, "10"), Options{Now: clk.Now})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { n.Close() })
	return n
}

// TestFAPPNetworkBadInputDropped: what arrives on a region channel is
// verified before it is kept: a tampered announce, an announce sent on
// another region's channel, an older sequence, a replay, an expired
// announce, a profile whose signature fails and junk are dropped and
// counted by reason; only the genuine announce is indexed.
func TestFAPPNetworkBadInputDropped(t *testing.T) {
	clk := &testClock{}
	is := newIssuer(t)
	n := openFAPPNode(t, is, clk)
	f := n.fapp
	now := clk.Now()
	id := mustIdentity(t)
	announce, profile := foreignOffer(t, id, is, now, "10115")
	tampered := slices.Clone(announce)
	tampered[len(tampered)-1] ^= 1 // the signature
	badProfile := slices.Clone(profile)
	badProfile[len(badProfile)-1] ^= 1
	other, _ := foreignOffer(t, mustIdentity(t), is, now, "20095") // region 20
	old, _ := foreignOffer(t, id, is, now.Add(-48*time.Hour), "10115")

	f.onRegionFrame(10, tampered, now)
	f.onRegionFrame(10, badProfile, now)
	f.onRegionFrame(10, other, now)
	f.onRegionFrame(10, nil, now)
	f.onRegionFrame(10, []byte{0x7f, 1, 2}, now)
	f.onRegionFrame(10, []byte{regionProfileReq, 1}, now)
	f.onRegionFrame(10, append([]byte{regionRevocation}, 1, 2, 3), now)
	f.onRegionFrame(10, old, now) // expired: issued two days ago for a day
	f.onRegionFrame(10, announce, now)
	f.onRegionFrame(10, announce, now) // the same sequence again
	f.mu.Lock()
	held := f.idx.Len()
	f.mu.Unlock()
	if held != 1 {
		t.Errorf("index holds %d announces, want the genuine one", held)
	}
	got := f.stats.snapshot()
	for k, want := range map[string]uint64{
		"dropped_announce_bad_signature": 1, "dropped_profile_bad_signature": 1, "dropped_announce_mismatch": 1,
		"dropped_region_malformed": 1, "dropped_region_unknown_kind": 1, "dropped_profile_request_malformed": 1,
		"dropped_revocation_malformed": 1, "dropped_announce_expired": 1, "dropped_announce_stale": 1, "announces_accepted": 1,
	} {
		if got[k] != want {
			t.Errorf("%s = %d, want %d (all: %v)", k, got[k], want, got)
		}
	}
}

// TestFAPPQueryCodec: a query survives its encoding, and every strict
// rule of the decoder holds.
func TestFAPPQueryCodec(t *testing.T) {
	w, _ := fapp.ParseTimeWindow("mo-fr 17:00-21:00")
	q := fapp.Query{PLZPrefix: "104", Verfahren: fapp.SetOf(fapp.Verhaltenstherapie), Kostentraeger: fapp.SetOf(fapp.GKV, fapp.PKV),
		Sprachen: []fapp.Sprache{{'t', 'r'}}, Zeitfenster: []fapp.TimeWindow{w}, BarrierefreiZugang: true, NurZertifiziert: true,
		Fruehestens: time.Unix(1_900_000_000, 0).UTC(), Limit: 20}
	b, err := encodeQuery(&q)
	if err != nil {
		t.Fatal(err)
	}
	back, err := decodeQuery(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := encodeQuery(&back)
	if !slices.Equal(b, b2) || back.PLZPrefix != "104" || !back.Kostentraeger.Has(fapp.PKV) || back.Zeitfenster[0] != w {
		t.Errorf("round trip: %+v", back)
	}
	for name, bad := range map[string][]byte{
		"empty": nil, "version": append([]byte{2}, b[1:]...), "truncated": b[:len(b)-1], "trailing": append(slices.Clone(b), 0),
		"flags":  func() []byte { c := slices.Clone(b); c[2+3+7] = 0x80; return c }(),
		"prefix": func() []byte { c := slices.Clone(b); c[2] = 'x'; return c }(),
	} {
		if _, err := decodeQuery(bad); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

// TestFAPPAnswerSealing: an answer opens only with its query's key and
// ID, its padding hides how many items it holds, and a tampered answer is
// refused.
func TestFAPPAnswerSealing(t *testing.T) {
	key, _ := ecdh.X25519().GenerateKey(rand.Reader)
	var id queryID
	rand.Read(id[:])
	one := padAnswer([]answerItem{{itemAnnounce, make([]byte, 180)}})
	three := padAnswer([]answerItem{{itemAnnounce, make([]byte, 180)}, {itemAnnounce, make([]byte, 190)}, {itemProfile, make([]byte, 200)}})
	if len(one) != len(three) {
		t.Errorf("answers of 1 and 3 items differ in size: %d, %d", len(one), len(three))
	}
	sealed, err := sealAnswer(rand.Reader, id, key.PublicKey().Bytes(), three)
	if err != nil {
		t.Fatal(err)
	}
	pub, body := sealed[1+queryIDSize:1+queryIDSize+x25519Size], sealed[1+queryIDSize+x25519Size:]
	plain, err := openAnswer(key, id, pub, body)
	if err != nil {
		t.Fatal(err)
	}
	items, err := parseAnswer(plain)
	if err != nil || len(items) != 3 || items[2].kind != itemProfile {
		t.Fatalf("items %v, %v", items, err)
	}
	other, _ := ecdh.X25519().GenerateKey(rand.Reader)
	if _, err := openAnswer(other, id, pub, body); err == nil {
		t.Error("another key opened the answer")
	}
	id2 := id
	id2[0] ^= 1
	if _, err := openAnswer(key, id2, pub, body); err == nil {
		t.Error("the answer opened under another query ID")
	}
	body[5] ^= 1
	if _, err := openAnswer(key, id, pub, body); err == nil {
		t.Error("a tampered answer opened")
	}
	bad := slices.Clone(plain)
	bad[len(bad)-1] = 1
	if _, err := parseAnswer(bad); err == nil {
		t.Error("non-zero padding accepted")
	}
	if _, err := parseAnswer(plain[:100]); err == nil {
		t.Error("an answer of no bucket size accepted")
	}
}

// TestFAPPAPIBadInput: the node refuses what the API's validation cannot
// know is wrong, with the right error.
func TestFAPPAPIBadInput(t *testing.T) {
	clk := &testClock{}
	is := newIssuer(t)
	n, stop := startClocked(t, fappConfig(t, is, "10"), clk)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A credential for another node's keys.
	now := clk.Now().Truncate(time.Second)
	foreign, _ := is.Issue(fapp.Credential{Serial: 1, Therapist: mustIdentity(t).Compact(), Berufsgruppe: fapp.Psychotherapeut,
		RegistryID: "X", ValidFrom: now, ValidTo: now.Add(time.Hour)})
	raw, _ := foreign.MarshalBinary()
	if _, err := n.FAPPCredentialImport(ctx, raw); !errors.Is(err, rpcapi.ErrInvalidParams) {
		t.Errorf("foreign credential: %v", err)
	}
	if _, err := n.FAPPCredentialImport(ctx, []byte{1, 2, 3}); !errors.Is(err, rpcapi.ErrInvalidParams) {
		t.Errorf("junk credential: %v", err)
	}
	profile := rpcapi.FAPPProfile{Name: "X", PLZ: "10115", Verfahren: []string{"SYSTEMISCH"}, Kostentraeger: []string{"GKV"}, Altersgruppen: []string{"ERWACHSENE"}}
	if _, err := n.FAPPProfileSet(ctx, profile); !errors.Is(err, rpcapi.ErrInvalidParams) {
		t.Errorf("profile without a credential: %v", err)
	}
	if _, err := n.FAPPPublish(ctx, rpcapi.FAPPPublishParams{Slots: therapistSlots(clk.Now())}); !errors.Is(err, rpcapi.ErrRefused) {
		t.Errorf("publish without a profile: %v", err)
	}
	becomeTherapist(t, ctx, n, is, clk)
	past := therapistSlots(clk.Now())[:1]
	past[0].Start = clk.Now().Add(-48 * time.Hour).Truncate(time.Minute)
	if _, err := n.FAPPPublish(ctx, rpcapi.FAPPPublishParams{Slots: past}); !errors.Is(err, rpcapi.ErrInvalidParams) {
		t.Errorf("slot in the past: %v", err)
	}
	wrongVerfahren := therapistSlots(clk.Now())[:1]
	wrongVerfahren[0].Verfahren = "ANALYTISCH"
	if _, err := n.FAPPPublish(ctx, rpcapi.FAPPPublishParams{Slots: wrongVerfahren}); !errors.Is(err, rpcapi.ErrInvalidParams) {
		t.Errorf("a Verfahren the profile does not offer: %v", err)
	}
	if o, _ := n.FAPPSlots(ctx); len(o.Slots) != 2 {
		t.Errorf("refused publishes changed the offer: %+v", o.Slots)
	}
	unknown := "0123456789abcdef0123456789abcdef"
	if _, err := n.FAPPRespond(ctx, rpcapi.FAPPRespondParams{ID: unknown, Action: "confirm"}); !errors.Is(err, rpcapi.ErrNotFound) {
		t.Errorf("respond to an unknown reservation: %v", err)
	}
	if _, err := n.FAPPCancel(ctx, rpcapi.FAPPCancelParams{ID: unknown}); !errors.Is(err, rpcapi.ErrNotFound) {
		t.Errorf("cancel an unknown reservation: %v", err)
	}
	if _, err := n.FAPPReserve(ctx, rpcapi.FAPPReserveParams{Slot: fapp.TherapistKeyOf(mustIdentity(t).Compact()).String() + "/1"}); !errors.Is(err, rpcapi.ErrInvalidParams) {
		t.Errorf("reserve a slot nobody announced: %v", err)
	}
	if _, err := n.FAPPWithdraw(ctx, rpcapi.FAPPWithdrawParams{Slots: []uint16{77}}); !errors.Is(err, rpcapi.ErrNotFound) {
		t.Errorf("withdraw an unknown slot: %v", err)
	}
	if _, err := n.FAPPRevocationImport(ctx, []byte{1}); !errors.Is(err, rpcapi.ErrInvalidParams) {
		t.Errorf("junk revocation: %v", err)
	}
	stranger := newIssuer(t)
	rv, _ := stranger.Revoke(1, clk.Now(), []uint64{7})
	rraw, _ := rv.MarshalBinary()
	if _, err := n.FAPPRevocationImport(ctx, rraw); !errors.Is(err, rpcapi.ErrRefused) {
		t.Errorf("revocation of an untrusted issuer: %v", err)
	}
	// The trusted issuer revokes the node's credential: its status says so.
	rv, _ = is.Revoke(1, clk.Now(), []uint64{7})
	rraw, _ = rv.MarshalBinary()
	if iss, err := n.FAPPRevocationImport(ctx, rraw); err != nil || iss.Revoked != 1 {
		t.Errorf("revocation: %+v %v", iss, err)
	}
	if st, _ := n.FAPPCredentialStatus(ctx); st.Status != rpcapi.FAPPCredRevoked {
		t.Errorf("status after revocation: %+v", st)
	}
}

// FuzzFAPPQueryDecode: the query decoder never panics, and what it
// accepts encodes back to the same bytes.
func FuzzFAPPQueryDecode(f *testing.F) {
	q := fapp.Query{PLZPrefix: "10", Verfahren: fapp.SetOf(fapp.Verhaltenstherapie), Limit: 5}
	b, _ := encodeQuery(&q)
	f.Add(b)
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := decodeQuery(b)
		if err != nil {
			return
		}
		back, err := encodeQuery(&q)
		if err != nil || !slices.Equal(back, b) {
			t.Fatalf("accepted %x, encodes to %x (%v)", b, back, err)
		}
	})
}

// FuzzFAPPAnswerParse: the answer layout parser never panics.
func FuzzFAPPAnswerParse(f *testing.F) {
	f.Add(padAnswer([]answerItem{{itemAnnounce, []byte("x")}}))
	f.Add(make([]byte, 1024))
	f.Fuzz(func(t *testing.T, b []byte) {
		items, err := parseAnswer(b)
		if err == nil && len(items) > len(b)/3 {
			t.Fatalf("%d items from %d bytes", len(items), len(b))
		}
	})
}

// FuzzFAPPFrames: whatever arrives on a region or the query channel is
// handled without a panic (dropped and counted when bad).
func FuzzFAPPFrames(f *testing.F) {
	clk := &testClock{}
	is := newIssuer(f)
	n := openFAPPNode(f, is, clk)
	n.fapp.relay = true // answers queries too
	announce, profile := foreignOffer(&testing.T{}, mustIdentity(&testing.T{}), is, clk.Now(), "10115")
	q := fapp.Query{PLZPrefix: "10"}
	qb, _ := encodeQuery(&q)
	key, _ := ecdh.X25519().GenerateKey(rand.Reader)
	query := slices.Concat([]byte{queryMsg}, make([]byte, queryIDSize), key.PublicKey().Bytes(), qb)
	for _, seed := range [][]byte{announce, profile, query, {regionProfileReq}, {answerMsg}} {
		f.Add(false, seed)
		f.Add(true, seed)
	}
	f.Fuzz(func(t *testing.T, onQueries bool, b []byte) {
		now := clk.Now()
		if onQueries {
			n.fapp.onQueryFrame(b, now)
		} else {
			n.fapp.onRegionFrame(10, b, now)
		}
		n.fapp.mu.Lock()
		n.fapp.inflight = nil
		n.fapp.mu.Unlock()
	})
}
