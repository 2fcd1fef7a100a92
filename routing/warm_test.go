package routing

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
)

// loraEngine is an engine (identity and randomness from seed) with one
// LoRa link, ID 1, as a simulator's radio node has.
func loraEngine(t *testing.T, seed byte) *Engine {
	t.Helper()
	id, err := protocol.NewIdentity(rand.NewChaCha8([32]byte{seed}))
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{Identity: id, Rand: rand.NewChaCha8([32]byte{seed, 1})}, attackEpoch, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Step(attackEpoch, LinkUp{Link: LinkInfo{ID: 1, Kind: LinkLoRa}}); err != nil {
		t.Fatal(err)
	}
	e.Ready()
	e.Advance()
	return e
}

// pathRequestFrames are n path requests for random targets, as a
// neighbour forwards them (hop count 1, a forwarder named).
func pathRequestFrames(n int) [][]byte {
	r := rand.New(rand.NewChaCha8([32]byte{9}))
	var out [][]byte
	for i := range n {
		pr := protocol.PathRequest{HopLimit: 8, HopCount: 1, Forwarder: Address{1, byte(i)}}
		for j := range pr.ID {
			pr.ID[j] = byte(r.Uint32())
		}
		for j := range pr.Target {
			pr.Target[j] = byte(r.Uint32())
		}
		out = append(out, pr.AppendTo(nil))
	}
	// The same requests again: duplicates.
	for i := range n {
		out = append(out, bytes.Clone(out[i]))
	}
	return out
}

// A simulator hands the same path request frame to every receiver's
// engine without a copy each (meshsim's rxCopy): the engine must neither
// change the frame nor keep it. Every request here is passed on, so a
// frame kept in the queue would show in the transmits.
func TestPathRequestFrameNotChangedOrKept(t *testing.T) {
	e := loraEngine(t, 1)
	now := attackEpoch
	for i, frame := range pathRequestFrames(40) {
		now = now.Add(time.Second)
		orig := bytes.Clone(frame)
		if err := e.Step(now, &FrameReceived{Link: 1, Frame: frame, SNR: 5, HasSNR: true}); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(frame, orig) {
			t.Fatalf("request %d: the engine changed the frame it was given", i)
		}
		want := 0
		if i < 40 {
			want = 1 // new: passed on; the second 40 are duplicates
		}
		for k := range frame {
			frame[k] = 0xff // the simulator's next use of its buffer
		}
		rd := e.Ready()
		got := 0
		for _, tx := range rd.Transmits {
			if k, err := protocol.PeekKind(tx.Frame); err == nil && k == protocol.KindPathRequest {
				pr, err := protocol.ParsePathRequest(tx.Frame)
				if err != nil {
					t.Fatalf("request %d: a forwarded request does not parse (kept the input?): %v", i, err)
				}
				if !bytes.Equal(pr.ID[:], orig[1:1+protocol.PathRequestIDSize]) {
					t.Fatalf("request %d: forwarded ID %x", i, pr.ID)
				}
				got++
			}
		}
		e.Advance()
		if got != want {
			t.Fatalf("request %d: %d requests passed on, want %d", i, got, want)
		}
	}
}

// Warm changes nothing: two engines given the same inputs, one of them
// warmed before each, send the same frames and count the same.
func TestWarmChangesNothing(t *testing.T) {
	a, b := loraEngine(t, 2), loraEngine(t, 2)
	now := attackEpoch
	for i, frame := range pathRequestFrames(30) {
		now = now.Add(700 * time.Millisecond)
		_ = b.Warm()
		for _, e := range []*Engine{a, b} {
			if err := e.Step(now, &FrameReceived{Link: 1, Frame: bytes.Clone(frame)}); err != nil {
				t.Fatal(err)
			}
		}
		_ = b.Warm()
		ra, rb := a.Ready(), b.Ready()
		if len(ra.Transmits) != len(rb.Transmits) {
			t.Fatalf("input %d: %d transmits against %d", i, len(ra.Transmits), len(rb.Transmits))
		}
		for k := range ra.Transmits {
			if !bytes.Equal(ra.Transmits[k].Frame, rb.Transmits[k].Frame) {
				t.Fatalf("input %d: transmit %d differs", i, k)
			}
		}
		a.Advance()
		b.Advance()
		if a.NextWake() != b.NextWake() || a.Counters() != b.Counters() {
			t.Fatalf("input %d: the warmed engine's wake or counters differ", i)
		}
	}
}
