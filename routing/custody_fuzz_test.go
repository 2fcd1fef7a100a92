package routing

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
)

// FuzzCustodyRecord feeds arbitrary persisted custody records to the
// decoder and to New. The decoder must never panic, must report every
// failure as ErrCorruptRecord, and what it accepts must encode back to the
// same bytes (the format has one encoding per record). New must restore a
// good record, report a corrupt one as an error wrapping ErrCorruptRecord,
// and return an engine that works either way.
//
// Run: go test ./routing -run '^$' -fuzz FuzzCustodyRecord -fuzztime 30s -fuzzminimizetime 10x
func FuzzCustodyRecord(f *testing.F) {
	fx := custodyFixture()
	for _, s := range fx.seeds {
		f.Add(s.id[:], s.value, "c/"+string(s.id[:2]))
	}
	f.Add([]byte{}, []byte{}, "seq")
	f.Add(make([]byte, 16), []byte{0, 0, 0, 1}, "d/00112233445566778899aabbccddeeff")
	f.Add(make([]byte, 16), encodeDelivered(deliveredEntry{expires: 1 << 31, from: Address{2}, sealed: true}, MessageID{1}, envKey{}, 0), "d/00112233445566778899aabbccddeeff")
	f.Add(make([]byte, 16), encodeDelivered(deliveredEntry{expires: 1 << 31, from: Address{2}, sealed: true}, MessageID{1}, envKey{3}, 7), "d/0000000000000007")
	f.Fuzz(func(t *testing.T, idb, value []byte, key string) {
		var id [16]byte
		copy(id[:], idb)
		r, err := decodeCustody(id, value)
		if err != nil {
			if !errors.Is(err, ErrCorruptRecord) {
				t.Fatalf("decode error %v does not wrap ErrCorruptRecord", err)
			}
		} else {
			got := encodeCustody(r)
			if value[0] == custodyFormatV1 {
				// Format 1 is read for migration: it must come back
				// as the same record in format 2, under its new key.
				r2, err := decodeCustody(r.key, got)
				if err != nil || !bytes.Equal(encodeCustody(r2), got) || r2.id != MessageID(id) {
					t.Fatalf("migrated record does not round trip: %v", err)
				}
			} else if !bytes.Equal(got, value) {
				t.Fatalf("record does not round trip:\n in  %x\n out %x", value, got)
			}
			if (value[0] == custodyFormat && r.key != envKey(id)) || len(r.data) > maxCustodyData {
				t.Fatalf("decoded record %x with %d bytes of data", r.key, len(r.data))
			}
			// The record's header must agree with the envelope it keeps:
			// the engine retries and expires by the header.
			if !r.awaitingKey && !r.session { // a session record keeps a session message
				env, err := protocol.ParseEnvelope(r.data)
				if err != nil {
					t.Fatalf("accepted a record whose envelope does not parse: %v", err)
				}
				if env.ID != r.id || env.Dest != r.dest || env.Type != r.typ || env.Created != r.created ||
					env.Expires != r.expires || (env.Flags&protocol.FlagSealedSender != 0) != r.sealedSender {
					t.Fatalf("accepted a record whose header (type %v, created %d, expires %d, sealed sender %v) disagrees with its envelope (%v, %d, %d, flags %v)",
						r.typ, r.created, r.expires, r.sealedSender, env.Type, env.Created, env.Expires, env.Flags)
				}
			}
		}

		// Restore it, with an arbitrary second record, and use the engine.
		now := fuzzEpoch
		cfg := Config{Identity: fx.id, Rand: rand.NewChaCha8([32]byte{1})}
		recs := []Record{{Key: custodyKey(id), Value: value}, {Key: key, Value: value}}
		e, err := New(cfg, now, recs)
		if e == nil {
			t.Fatalf("New returned no engine: %v", err)
		}
		if err != nil && !errors.Is(err, ErrCorruptRecord) {
			t.Fatalf("New error %v does not wrap ErrCorruptRecord", err)
		}
		if r == nil && err == nil {
			t.Fatalf("New accepted a corrupt custody record without an error")
		}
		// A body sealed at rest opens only under this node's key: a made-up
		// one is refused at restore (an ErrCorruptRecord, checked above).
		// A session message's key is the sender's digest of its number,
		// which the decoder cannot check and the engine checks at restore:
		// a made-up one is refused there too.
		restored := r != nil && r.expires > protocol.TimestampOf(now) && !r.bodySealed &&
			(!r.session || sessionKeyMatches(fx.id.Address(), r))
		if c := e.Counters(); restored && c.CustodyCount == 0 {
			t.Fatalf("good record not restored (counters %+v)", c)
		}
		peer := Address{}
		if r != nil {
			peer = r.dest
		}
		steps := []Input{
			LinkUp{Link: LinkInfo{ID: 1, Kind: LinkIP, Peer: peer}},
			LinkUp{Link: LinkInfo{ID: 2, Kind: LinkLoRa, Window: 1}},
			SendRequest{Ref: 1, Dest: fx.other, Body: []byte("after a restore")},
			FrameReceived{Link: 1, Frame: value},
		}
		for _, in := range steps {
			_ = e.Step(now, in)
			drain(t, e)
		}
		// Run the timers; a few Ticks at one instant must clear what is due.
		same := 0
		for range 40 {
			w := e.NextWake()
			if w.Equal(now) {
				if same++; same > 3 {
					t.Fatalf("busy loop: NextWake stays at %v", w)
				}
			} else {
				same = 0
			}
			now = w
			e.Tick(now)
			_ = e.Step(now, TxDone{Link: 2, Frames: 1})
			drain(t, e)
		}
	})
}

// sessionKeyMatches reports whether a session record's key is self's digest
// of the number its message carries, as restoreCustody requires.
func sessionKeyMatches(self Address, r *custodyRec) bool {
	n, _, err := protocol.ParseSessionMessage(r.data)
	return err == nil && protocol.SessionMessageKey(self, n) == r.key
}

func drain(t *testing.T, e *Engine) {
	for i := 0; e.HasReady(); i++ {
		if i == 100 {
			t.Fatal("Ready never runs dry")
		}
		e.Ready()
		e.Advance()
	}
}

var fuzzEpoch = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

type custodySeed struct {
	id    [16]byte // the record key: envelope key, or message ID in format 1
	value []byte
}

type custodyFix struct {
	id    *protocol.Identity
	other Address
	seeds []custodySeed
}

// custodyFixture builds real records: an origin's sealed message, one
// waiting for its key, a forwarder's signed envelope, one handed off.
var custodyFixture = sync.OnceValue(func() *custodyFix {
	mk := func(b byte) *protocol.Identity {
		id, err := protocol.NewIdentity(rand.NewChaCha8([32]byte{b}))
		if err != nil {
			panic(err)
		}
		return id
	}
	me, other, third := mk(1), mk(2), mk(3)
	fx := &custodyFix{id: me, other: other.Address()}
	now := protocol.TimestampOf(fuzzEpoch)
	h := func(id byte, dest Address) protocol.Header {
		return protocol.Header{Type: protocol.TypeMessage, HopLimit: 16, ID: MessageID{id}, Created: now, Expires: now + 3600, Dest: dest, WantReceipt: true}
	}
	add := func(r *custodyRec) {
		if err := r.checkData(); err != nil && r.expires > now {
			panic(err)
		}
		fx.seeds = append(fx.seeds, custodySeed{id: r.key, value: encodeCustody(r)},
			custodySeed{id: r.id, value: encodeCustodyV1(r)})
	}
	sealed, err := protocol.SealEnvelope(rand.NewChaCha8([32]byte{9}), me, other.Public(), h(1, other.Address()), []byte("sealed body"), protocol.SealOptions{})
	if err != nil {
		panic(err)
	}
	rawSealed, _ := sealed.MarshalBinary()
	add(&custodyRec{id: sealed.ID, dest: other.Address(), origin: true, typ: protocol.TypeMessage, ref: 42, created: now, expires: now + 3600, data: rawSealed})
	add(&custodyRec{id: MessageID{2}, dest: other.Address(), origin: true, awaitingKey: true, sealedSender: true, typ: protocol.TypeFAPP, ref: 7, created: now, expires: now + 3600, data: []byte("plain body")})
	signed, err := protocol.SignEnvelope(third, h(3, other.Address()), []byte("clear"))
	if err != nil {
		panic(err)
	}
	raw, _ := signed.MarshalBinary()
	add(&custodyRec{id: signed.ID, dest: other.Address(), typ: protocol.TypeMessage, created: now, expires: now + 3600, data: raw})
	add(&custodyRec{id: sealed.ID, dest: other.Address(), origin: true, handedOff: true, typ: protocol.TypeMessage, created: now, expires: now + 3600, data: rawSealed})
	add(&custodyRec{id: signed.ID, dest: other.Address(), mailboxed: true, typ: protocol.TypeMessage, created: now, expires: now + 3600, data: raw})
	old := h(4, other.Address())
	old.Created, old.Expires = now-7200, now-3600
	expired, err := protocol.SignEnvelope(third, old, []byte("expired"))
	if err != nil {
		panic(err)
	}
	raw, _ = expired.MarshalBinary()
	add(&custodyRec{id: expired.ID, dest: other.Address(), typ: protocol.TypeMessage, created: now - 7200, expires: now - 3600, data: raw})
	return fx
})

// encodeCustodyV1 lays out a record in format 1 (keyed on the message ID),
// as nodes before envelope keys wrote it.
func encodeCustodyV1(r *custodyRec) []byte {
	v2 := encodeCustody(r)
	b := append([]byte{custodyFormatV1}, v2[1:35]...)
	return append(b, v2[51:]...)
}
