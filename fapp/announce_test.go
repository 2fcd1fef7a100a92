package fapp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
)

func TestAnnounceRoundTrip(t *testing.T) {
	a := testAnnounce(t, 4)
	a.Slots[3] = Slot{ID: 9, Terminart: TherapieplatzLZT, Verfahren: Systemisch, Setting: Mehrpersonen, Modalitaet: Video,
		Voraussetzung: VoraussetzungPTV11, Start: BerlinTime(2027, 1, 5, 17, 0), Dauer: 100, Woechentlich: true,
		Bis: BerlinTime(2027, 4, 6, 17, 0), Status: SlotGehalten}
	raw := signed(t, 1, a)
	got, err := ParseSlotAnnounce(raw, testNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(normalize(a), normalize(got)) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, a)
	}
	again, _ := got.MarshalBinary()
	if !bytes.Equal(again, raw) {
		t.Fatal("re-encoding differs")
	}
	if got.Slots[3].Occurrences() != 14 {
		t.Fatalf("weekly slot Jan 5 to Apr 6: %d occurrences, want 14", got.Slots[3].Occurrences())
	}
}

// normalize puts times in UTC so DeepEqual compares instants.
func normalize(a *SlotAnnounce) *SlotAnnounce {
	c := a.Clone()
	c.Issued, c.Expires = c.Issued.UTC(), c.Expires.UTC()
	for i := range c.Slots {
		c.Slots[i].Start = c.Slots[i].Start.UTC()
		if !c.Slots[i].Bis.IsZero() {
			c.Slots[i].Bis = c.Slots[i].Bis.UTC()
		}
	}
	return c
}

// TestAnnounceFitsLoRa seals a real region channel frame around the
// broadcast of an announce of one therapist with 4 slots and checks it fits
// one 255-byte LoRa frame.
func TestAnnounceFitsLoRa(t *testing.T) {
	a := testAnnounce(t, 4)
	raw := signed(t, 1, a)
	key := RegionChannelKey(a.Region())
	frame, err := protocol.SealChannel(seeded(10), key, 3, testNow, AppendBroadcast(nil, BroadcastAnnounce, raw), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("announce with 4 slots and 2 languages: %d B; as a broadcast in a channel frame: %d B (LoRa frame: %d B)", len(raw), len(frame), LoRaFrameSize)
	overhead := protocol.ChannelOverhead + BroadcastOverhead
	if len(raw) != AnnounceSize(2, 4) || len(frame) != len(raw)+overhead {
		t.Fatalf("sizes %d/%d, want %d/%d", len(raw), len(frame), AnnounceSize(2, 4), AnnounceSize(2, 4)+overhead)
	}
	if len(frame) > LoRaFrameSize {
		t.Fatalf("channel frame of %d bytes does not fit a LoRa frame", len(frame))
	}
	// The frame opens with the region key and gives the announce back.
	f, err := protocol.ParseChannelFrame(frame)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := f.Open(key)
	if err != nil {
		t.Fatal(err)
	}
	kind, payload, err := ParseBroadcast(msg.Body)
	if err != nil || kind != BroadcastAnnounce || !bytes.Equal(payload, raw) {
		t.Fatalf("broadcast: %v %v", kind, err)
	}
	// The worst case with 4 slots (all 8 languages) fits too.
	if AnnounceSize(MaxSprachen, 4) > MaxLoRaAnnounceSize {
		t.Fatalf("4 slots with %d languages: %d bytes", MaxSprachen, AnnounceSize(MaxSprachen, 4)+overhead)
	}
}

func TestBroadcast(t *testing.T) {
	if RegionChannelKey(10).ID() == RegionChannelKey(11).ID() || RegionChannelKey(10) == NationalChannelKey() {
		t.Fatal("channel keys collide")
	}
	for _, bad := range [][]byte{nil, {1}, {9, 1}, {0, 1}} {
		if _, _, err := ParseBroadcast(bad); err == nil {
			t.Fatalf("%x accepted", bad)
		}
	}
}

func TestAnnounceRejects(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(a *SlotAnnounce)
		want   error
	}{
		{"mehrpersonen outside systemisch", func(a *SlotAnnounce) { a.Slots[0].Setting = Mehrpersonen }, ErrImpossible},
		{"gruppe without seats", func(a *SlotAnnounce) {
			a.Slots[0].Setting, a.Slots[0].Terminart, a.Slots[0].Dauer = Gruppe, Gruppentherapie, 100
		}, ErrImpossible},
		{"gruppe with too many seats", func(a *SlotAnnounce) {
			a.Slots[0].Setting, a.Slots[0].Terminart, a.Slots[0].Plaetze = Gruppe, Gruppentherapie, 15
		}, ErrImpossible},
		{"seats outside a group", func(a *SlotAnnounce) { a.Slots[0].Plaetze = 2 }, ErrImpossible},
		{"group Terminart in Einzel", func(a *SlotAnnounce) { a.Slots[0].Terminart = GruppeGrundversorgung }, ErrImpossible},
		{"duration 45", func(a *SlotAnnounce) { a.Slots[0].Dauer = 45 }, ErrMalformed},
		{"duration 0", func(a *SlotAnnounce) { a.Slots[0].Dauer = 0 }, ErrMalformed},
		{"sprechstunde of 100", func(a *SlotAnnounce) { a.Slots[0].Dauer = 100 }, ErrImpossible},
		{"weekly sprechstunde", func(a *SlotAnnounce) { a.Slots[0].Woechentlich = true }, ErrImpossible},
		{"single slot with end", func(a *SlotAnnounce) { a.Slots[0].Bis = a.Slots[0].Start.Add(7 * 24 * time.Hour) }, ErrImpossible},
		{"weekly too long", func(a *SlotAnnounce) {
			a.Slots[0].Terminart, a.Slots[0].Woechentlich = TherapieplatzKZT, true
			a.Slots[0].Bis = a.Slots[0].Start.Add(110 * 7 * 24 * time.Hour)
		}, ErrImpossible},
		{"slot in the past", func(a *SlotAnnounce) { a.Slots[0].Start = testNow.Add(-time.Hour) }, ErrInPast},
		{"slot before now, after issue", func(a *SlotAnnounce) {
			a.Issued, a.Slots[0].Start = testNow.Add(-2*time.Hour), testNow.Add(-time.Hour)
		}, ErrInPast},
		{"slot too far ahead", func(a *SlotAnnounce) { a.Slots[0].Start = testNow.Add(MaxSlotHorizon + time.Hour) }, ErrImpossible},
		{"start not whole minutes", func(a *SlotAnnounce) { a.Slots[0].Start = a.Slots[0].Start.Add(time.Second) }, ErrMalformed},
		{"Verfahren not announced", func(a *SlotAnnounce) { a.Slots[0].Verfahren = Analytisch }, ErrImpossible},
		{"invalid PLZ", func(a *SlotAnnounce) { a.PLZ = 0 }, ErrInvalidPLZ},
		{"PLZ not in use", func(a *SlotAnnounce) { a.PLZ = 99999 }, ErrInvalidPLZ},
		{"PLZ beyond 5 digits", func(a *SlotAnnounce) { a.PLZ = 104370 }, ErrInvalidPLZ},
		{"no Kostentraeger", func(a *SlotAnnounce) { a.Kostentraeger = 0 }, ErrImpossible},
		{"invalid Kostentraeger bit", func(a *SlotAnnounce) { a.Kostentraeger |= 1 << 7 }, ErrMalformed},
		{"too many slots", func(a *SlotAnnounce) { a.Slots = testSlots(MaxSlots + 1) }, ErrTooLarge},
		{"duplicate slot ID", func(a *SlotAnnounce) { a.Slots[1].ID = a.Slots[0].ID }, ErrMalformed},
		{"too many languages", func(a *SlotAnnounce) {
			a.Sprachen = nil
			for c := byte('a'); c < 'a'+MaxSprachen+1; c++ {
				a.Sprachen = append(a.Sprachen, Sprache{'a', c})
			}
		}, ErrTooLarge},
		{"languages unsorted", func(a *SlotAnnounce) { a.Sprachen[0], a.Sprachen[1] = a.Sprachen[1], a.Sprachen[0] }, ErrMalformed},
		{"lifetime too long", func(a *SlotAnnounce) { a.Expires = a.Issued.Add(MaxAnnounceLifetime + time.Minute) }, ErrMalformed},
		{"withdrawal with slots", func(a *SlotAnnounce) { a.Withdrawn = true }, ErrImpossible},
		{"issued in the future", func(a *SlotAnnounce) {
			a.Issued, a.Expires = testNow.Add(time.Hour), testNow.Add(2*time.Hour)
		}, ErrFromFuture},
		{"expired", func(a *SlotAnnounce) { a.Issued, a.Expires = testNow.Add(-2*time.Hour), testNow }, ErrExpired},
		{"invalid Geschlecht", func(a *SlotAnnounce) { a.Geschlecht = 4 }, ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := testAnnounce(t, 4)
			c.mutate(a)
			if _, err := SignAnnounce(testIdentity(t, 1), a, testNow); !errors.Is(err, c.want) {
				t.Fatalf("SignAnnounce: %v, want %v", err, c.want)
			}
		})
	}
}

// TestAnnounceDecoderRejects forges encodings the encoder refuses to make,
// by patching valid bytes and re-signing, and checks the decoder refuses
// them with the right reason.
func TestAnnounceDecoderRejects(t *testing.T) {
	id := testIdentity(t, 1)
	base := signed(t, 1, testAnnounce(t, 2))
	body := base[:len(base)-protocol.SignatureSize]
	slot0 := announceHeaderSize + 2*2 + 1 // after the 2 languages and the slot count
	resign := func(b []byte) []byte { return append(b, id.Sign(labelAnnounce, b)...) }
	patch := func(off int, v byte) []byte {
		b := bytes.Clone(body)
		b[off] = v
		return resign(b)
	}
	past := bytes.Clone(body)
	binary.BigEndian.PutUint32(past[slot0+5:], uint32(testNow.Add(-time.Minute).Unix()))
	cases := []struct {
		name string
		raw  []byte
		want error
	}{
		{"slot before the issue time", resign(past), ErrInPast},
		{"unknown version", patch(0, 2), ErrUnknownVersion},
		{"reserved flag", patch(1, body[1]|0x80), ErrMalformed},
		{"Mehrpersonen with VT", patch(slot0+2, body[slot0+2]&^(3<<5)|byte(Mehrpersonen)<<5), ErrImpossible},
		{"duration code 0", patch(slot0+3, body[slot0+3]&^(3<<5)), ErrMalformed},
		{"reserved slot bit", patch(slot0+3, body[slot0+3]|0x80), ErrMalformed},
		{"Terminart 0", patch(slot0+2, body[slot0+2]&^7), ErrMalformed},
		{"status 0", patch(slot0+2, body[slot0+2]&^(3<<3)), ErrMalformed},
		{"weeks on single slot", patch(slot0+10, 1), ErrImpossible},
		{"invalid PLZ", patch(52, 0x01), ErrInvalidPLZ},
		{"language count over limit", patch(announceHeaderSize-1, MaxSprachen+1), ErrTooLarge},
		{"trailing bytes", append(bytes.Clone(base), 0), ErrTrailing},
		{"truncated", base[:len(base)-1], ErrTruncated},
		{"empty", nil, ErrTruncated},
		{"oversized", make([]byte, maxAnnounceSize+1), ErrTooLarge},
		{"signature by another key", append(bytes.Clone(body), testIdentity(t, 2).Sign(labelAnnounce, body)...), ErrBadSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := ParseSlotAnnounce(c.raw, testNow, 0); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

func TestAnnounceTamper(t *testing.T) {
	raw := signed(t, 1, testAnnounce(t, 4))
	flipEachBit(raw, func(i int, c []byte) {
		if _, err := ParseSlotAnnounce(c, testNow, 0); err == nil {
			t.Fatalf("bit %d flipped: accepted", i)
		}
	})
}

func TestAnnounceWithdrawal(t *testing.T) {
	a := testAnnounce(t, 0)
	a.Withdrawn, a.Verfahren, a.Kostentraeger, a.Altersgruppen = true, 0, 0, 0
	raw := signed(t, 1, a)
	got, err := ParseSlotAnnounce(raw, testNow, 0)
	if err != nil || !got.Withdrawn || len(got.Slots) != 0 {
		t.Fatalf("withdrawal: %+v, %v", got, err)
	}
}

func TestAnnounceSizeFormula(t *testing.T) {
	for _, n := range []int{0, 1, 4, MaxSlots} {
		a := testAnnounce(t, n)
		if raw := signed(t, 1, a); len(raw) != AnnounceSize(len(a.Sprachen), n) {
			t.Fatalf("%d slots: %d bytes, AnnounceSize says %d", n, len(raw), AnnounceSize(len(a.Sprachen), n))
		}
	}
}

func BenchmarkAnnounceLoRaSize(b *testing.B) {
	raw := signed(b, 1, testAnnounce(b, 4))
	for b.Loop() {
		if _, err := ParseSlotAnnounce(raw, testNow, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(raw)), "announce-bytes")
	b.ReportMetric(float64(len(raw)+protocol.ChannelOverhead+BroadcastOverhead), "frame-bytes")
}
