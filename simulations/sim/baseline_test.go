package sim

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"meshd.dev/meshd/simulations/radio"
)

// TestMeshtasticCWSize checks getCWsize against the firmware's formula
// worked by hand: map(snr, -20, 10, 3, 8) with C's long arithmetic
// (truncation towards zero, no clamping).
func TestMeshtasticCWSize(t *testing.T) {
	for _, c := range []struct {
		snr  float64
		want int
	}{
		{-20, 3}, {-15, 3}, {-14, 4}, // (-14 + 20) * 5 / 30 = 1
		{-14.9, 4}, // the float is truncated towards zero to -14 first
		{-8, 5}, {-2, 6}, {4, 7}, {10, 8},
		{-25, 3}, // (-5 * 5) / 30 = 0 in C: no clamp needed
		{-26, 2}, // -30 / 30 = -1: below CWmin, as the firmware computes it
		{16, 9},  // above SNR_MAX the window grows past CWmax
		{9.9, 7}, // the float is truncated to 9 first
	} {
		if got := mtCWSize(c.snr); got != c.want {
			t.Errorf("mtCWSize(%v) = %d, want %d", c.snr, got, c.want)
		}
	}
}

// TestMeshtasticSlotTime checks computeSlotTimeMsec: 2.5 symbols of CAD
// plus 7.6 ms, truncated to whole ms.
func TestMeshtasticSlotTime(t *testing.T) {
	for _, c := range []struct {
		sf, bw int
		want   time.Duration
	}{
		// Meshtastic's modem presets (symbol time 2^SF / BW).
		{7, 250000, 8 * time.Millisecond},   // ShortFast: 0.512 ms symbols, 1.28 + 7.6 = 8.88
		{8, 250000, 10 * time.Millisecond},  // ShortSlow: 1.024 ms, 2.56 + 7.6 = 10.16
		{9, 250000, 12 * time.Millisecond},  // MediumFast: 2.048 ms, 5.12 + 7.6 = 12.72
		{10, 250000, 17 * time.Millisecond}, // MediumSlow: 4.096 ms, 10.24 + 7.6 = 17.84
		{11, 250000, 28 * time.Millisecond}, // LongFast: 8.192 ms, 20.48 + 7.6 = 28.08
		{11, 125000, 48 * time.Millisecond}, // LongModerate: 16.384 ms, 40.96 + 7.6 = 48.56
		{12, 125000, 89 * time.Millisecond}, // LongSlow: 32.768 ms, 81.92 + 7.6 = 89.52
		{12, 62500, 171 * time.Millisecond}, // VeryLongSlow: 65.536 ms, 163.84 + 7.6 = 171.44
	} {
		p := radio.NewParams(c.sf, c.bw, radio.CR45)
		if got := mtSlotTime(p); got != c.want {
			t.Errorf("SF%d BW%d: slot %v, want %v", c.sf, c.bw, got, c.want)
		}
	}
}

// TestMeshtasticTxDelayWeighted checks getTxDelayMsecWeighted for a
// client: 2 x CWmax slots, then random(0, 2^CWsize) slots.
func TestMeshtasticTxDelayWeighted(t *testing.T) {
	slot := 28 * time.Millisecond
	var asked int64
	first := func(n int64) int64 { asked = n; return 0 }
	last := func(n int64) int64 { asked = n; return n - 1 }
	for _, c := range []struct {
		snr       float64
		n         int64
		min, maxD time.Duration
	}{
		{-20, 8, 16 * slot, 23 * slot},   // CW 3: 2^3 slots to draw from
		{10, 256, 16 * slot, 271 * slot}, // CW 8
		{-2, 64, 16 * slot, 79 * slot},   // CW 6
	} {
		if d := mtTxDelayWeighted(c.snr, slot, first); d != c.min || asked != c.n {
			t.Errorf("snr %v: shortest %v (random(0, %d)), want %v (random(0, %d))", c.snr, d, asked, c.min, c.n)
		}
		if d := mtTxDelayWeighted(c.snr, slot, last); d != c.maxD {
			t.Errorf("snr %v: longest %v, want %v", c.snr, d, c.maxD)
		}
	}
}

// TestMeshtasticRetransmission checks getRetransmissionMsec at 0 %
// channel utilisation: 2 airtimes + (2^3 + 16 + 2^5) slots + 4.5 s.
func TestMeshtasticRetransmission(t *testing.T) {
	got := mtRetransmission(1234567*time.Microsecond, 28*time.Millisecond)
	want := 2*1234*time.Millisecond + 56*28*time.Millisecond + 4500*time.Millisecond
	if got != want {
		t.Fatalf("retransmission after %v, want %v", got, want)
	}
}

func TestBaselinePacketRoundTrip(t *testing.T) {
	p := blPacket{to: 7, from: 3, id: 99, hopLimit: 2, hopStart: 3, wantAck: true, kind: blData, num: 12345, size: 33}
	b := p.encode()
	if len(b) != mtHeaderLen+33 {
		t.Fatalf("frame of %d bytes, want %d", len(b), mtHeaderLen+33)
	}
	q, ok := decodeBaseline(b)
	if !ok || q != p {
		t.Fatalf("decoded %+v, want %+v", q, p)
	}
	if _, ok := decodeBaseline(b[:mtHeaderLen+8]); ok {
		t.Fatal("a truncated frame decoded")
	}
}

// lineScenario is n radio nodes 180 m apart on a line (SF9 reaches 238 m
// without shadowing: each hears only its neighbours), every node broadcasting.
func lineScenario(n int, extra string) string {
	return `seed = 5
duration = "30m"
[radio]
sf = 9
frequency_hz = 869525000
shadow_sigma_db = 0.0
[[topology]]
kind = "grid"
n = ` + strconv.Itoa(n) + `
cols = ` + strconv.Itoa(n) + `
spacing = 180.0
prefix = "n"
link = "lora"
[traffic]
broadcast_rate = 0.002
start = "1m"
stop = "20m"
` + extra
}

func runSummary(t *testing.T, doc string, sets ...string) Summary {
	t.Helper()
	sc, err := Parse([]byte(doc), sets)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(sc, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Run(nil)
	return s.Summary()
}

// TestBaselineHopLimit: on a line where each node hears only its
// neighbours, a naive flood with hop limit 1 reaches only the sender's
// neighbours (one rebroadcast), so nobody three hops away ever gets a
// broadcast; with hop limit 7 the ends reach each other.
func TestBaselineHopLimit(t *testing.T) {
	doc := lineScenario(8, "[broadcast]\nstrategy = \"naive\"\n")
	short := runSummary(t, doc, "broadcast.hop_limit=1")
	long := runSummary(t, doc, "broadcast.hop_limit=7")
	if short.Broadcasts == 0 || short.Frames["lora/baseline"] == 0 {
		t.Fatalf("no baseline broadcasts: %+v", short)
	}
	// With hop limit 1 a broadcast reaches at most 4 of 7 others (two
	// hops either side); with 7 it can reach all.
	if short.ChannelDeliveryRatio > 4.0/7 {
		t.Errorf("hop limit 1 delivered %v, more than two hops allow", short.ChannelDeliveryRatio)
	}
	if long.ChannelDeliveryRatio <= short.ChannelDeliveryRatio {
		t.Errorf("hop limit 7 delivered %v, not more than hop limit 1's %v", long.ChannelDeliveryRatio, short.ChannelDeliveryRatio)
	}
}

// TestMeshtasticCancelsOnDuplicate: in a clique (everyone hears everyone)
// a Meshtastic broadcast needs one rebroadcast at most (the others cancel
// theirs on hearing it, and the originator's implicit ACK stops its
// retries), so it sends far fewer frames than naive flooding, which
// rebroadcasts at every node.
func TestMeshtasticCancelsOnDuplicate(t *testing.T) {
	doc := `seed = 9
duration = "20m"
[radio]
sf = 9
frequency_hz = 869525000
[[topology]]
kind = "grid"
n = 9
spacing = 20.0
prefix = "n"
link = "lora"
[traffic]
broadcast_rate = 0.004
start = "1m"
stop = "15m"
`
	naive := runSummary(t, doc, "broadcast.strategy=naive")
	mt := runSummary(t, doc, "broadcast.strategy=meshtastic")
	if naive.Broadcasts != mt.Broadcasts || mt.Broadcasts == 0 {
		t.Fatalf("broadcasts %d and %d: the workload differs", naive.Broadcasts, mt.Broadcasts)
	}
	perN := float64(naive.Frames["lora/baseline"]) / float64(naive.Broadcasts)
	perM := float64(mt.Frames["lora/baseline"]) / float64(mt.Broadcasts)
	if perN < 8 {
		t.Errorf("naive: %.2f frames per broadcast in a clique of 9, want 9 (every node once)", perN)
	}
	if perM > 3 {
		t.Errorf("meshtastic: %.2f frames per broadcast in a clique, want about 2 (the original and one rebroadcast)", perM)
	}
	if mt.ChannelDeliveryRatio < 0.9 {
		t.Errorf("meshtastic reached %v in a clique", mt.ChannelDeliveryRatio)
	}
}

// TestMeshtasticRetriesWithoutImplicitAck: an originator that nobody
// hears gets no implicit ACK and sends each broadcast NUM_RELIABLE_RETX
// times in all.
func TestMeshtasticRetriesWithoutImplicitAck(t *testing.T) {
	doc := `seed = 2
duration = "10m"
[radio]
sf = 9
frequency_hz = 869525000
[[nodes]]
name = "a"
lora = true
x = 0.0
y = 0.0
[[nodes]]
name = "b"
lora = true
x = 5000.0
y = 0.0
[traffic]
broadcast_rate = 0.001
senders = ["a"]
channel_members = ["a"]
start = "1m"
stop = "9m"
[broadcast]
strategy = "meshtastic"
`
	sum := runSummary(t, doc)
	if sum.Broadcasts == 0 {
		t.Fatal("no broadcasts")
	}
	if got, want := sum.Frames["lora/baseline"], sum.Broadcasts*mtReliableRetx; got != want {
		t.Errorf("%d frames for %d broadcasts nobody hears, want %d (NUM_RELIABLE_RETX each)", got, sum.Broadcasts, want)
	}
}

// TestMeshtasticDirectMessage: flooded direct messages along a line are
// delivered and ACKed (the ACK stops the originator's retries).
func TestMeshtasticDirectMessage(t *testing.T) {
	doc := lineScenario(4, "[unicast]\nstrategy = \"meshtastic\"\n")
	sum := runSummary(t, doc, "traffic.broadcast_rate=0", "traffic.rate=0.002")
	if sum.Sent == 0 {
		t.Fatal("no messages")
	}
	if sum.DeliveryRatio < 0.8 {
		t.Errorf("delivery ratio %v on a quiet 4-node line", sum.DeliveryRatio)
	}
	if sum.HopsMax < 2 {
		t.Errorf("at most %d hops on a line of 4", sum.HopsMax)
	}
}

func TestBaselineBadKeys(t *testing.T) {
	for _, c := range []struct{ doc, want string }{
		{lineScenario(3, "[broadcast]\nstrategy = \"flood\"\n"), `line 19, column 1: broadcast.strategy: "flood" is not meshd, naive or meshtastic`},
		{lineScenario(3, "[unicast]\nstrategy = \"x\"\n"), `line 19, column 1: unicast.strategy`},
		{lineScenario(3, "[broadcast]\nhop_limit = 8\n"), `line 19, column 1: broadcast.hop_limit: 8 not in 1..7`},
		{lineScenario(3, "[broadcast]\n  hop_limit = -1\n"), `line 19, column 3: broadcast.hop_limit: -1 not in 1..7`},
		{lineScenario(3, "[broadcast]\nhop_limit = 0\n"), `line 19, column 1: broadcast.hop_limit: 0 not in 1..7`},
		{"broadcast.hop_limit = 0\n" + lineScenario(3, ""), `line 1, column 1: broadcast.hop_limit: 0 not in 1..7`},
	} {
		_, err := Parse([]byte(c.doc), nil)
		if !errors.Is(err, ErrScenario) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want one containing %q", err, c.want)
		}
	}
	// A --set names itself (the line of a re-written document would
	// mislead), and a key the file sets keeps the file's line with other
	// --sets around.
	_, err := Parse([]byte(lineScenario(3, "")), []string{"seed=2", "broadcast.meshtastic=\"v2\""})
	if err == nil || !strings.Contains(err.Error(), `--set broadcast.meshtastic="v2": "v2" is not firmware or meshtasticator`) {
		t.Errorf("error %v", err)
	}
	_, err = Parse([]byte(lineScenario(3, "[broadcast]\nhop_limit = 9\n")), []string{"seed=2"})
	if err == nil || !strings.Contains(err.Error(), "line 19, column 1: broadcast.hop_limit: 9 not in 1..7") {
		t.Errorf("error %v", err)
	}
}

// FuzzDecodeBaseline: any frame decodes or is refused, never a panic, and
// what decodes encodes back to the same header and payload start.
func FuzzDecodeBaseline(f *testing.F) {
	f.Add((&blPacket{to: blBroadcast, from: 1, id: 2, hopLimit: 3, hopStart: 3, kind: blData, num: 7, size: 33}).encode())
	f.Add((&blPacket{to: 4, from: 1, id: 9, hopLimit: 0, hopStart: 7, wantAck: true, kind: blAck, num: 2, size: 9}).encode())
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, ok := decodeBaseline(b)
		if !ok {
			return
		}
		e := p.encode()
		q, ok := decodeBaseline(e)
		if !ok || q != p {
			t.Fatalf("%+v re-encoded as %+v", p, q)
		}
	})
}
