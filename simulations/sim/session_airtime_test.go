package sim

import (
	"flag"
	"fmt"
	"strings"
	"testing"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/simulations/radio"
)

var airtimeTable = flag.Bool("airtime.table", false, "TestSessionAirtime: run every configuration and print the table of docs/performance.md")

// airtimeRun is one chain of LoRa nodes n0..n<hops>, each in range of its
// neighbours only, where n0 sends msgs messages of size bytes to the last
// node.
type airtimeRun struct {
	sf, hops, size, msgs int
	sessions             bool
}

func (r airtimeRun) scenario(t *testing.T) *Scenario {
	t.Helper()
	dev := radio.Device{TxPowerDBm: 14}
	spacing := 0.7 * radio.DefaultModel().MaxRange(radio.NewParams(r.sf, 125000, radio.CR45), dev, dev)
	var b strings.Builder
	// Messages far enough apart that each crosses the chain alone: the
	// figures are per message, not under load.
	rate := 0.002
	if r.sf >= 12 {
		rate = 0.0003
	}
	// The same length for every run of a configuration (the baseline and
	// the runs with 1 and airtimeMsgs messages), so their difference is the
	// messages' cost.
	hours := 6 + int(float64(airtimeMsgs)/rate/3600*2)
	fmt.Fprintf(&b, "name = \"airtime\"\nseed = 1\nduration = \"%dh\"\n", hours)
	fmt.Fprintf(&b, "[radio]\nsf = %d\nbandwidth_hz = 125000\ncr = 5\ntx_power_dbm = 14\nfrequency_hz = 869525000\nshadow_sigma_db = 0.0\n", r.sf)
	fmt.Fprintf(&b, "[engine]\nannounce_interval = \"24h\"\nretry_base = \"5m\"\nretry_max = \"30m\"\nsessions = %v\n", r.sessions)
	for i := 0; i <= r.hops; i++ {
		fmt.Fprintf(&b, "[[nodes]]\nname = \"n%d\"\nlora = true\nx = %.1f\ny = 0.0\n", i, float64(i)*spacing)
	}
	start := "2h"
	if r.msgs == 0 {
		start = "1000h" // no traffic: the baseline
	}
	fmt.Fprintf(&b, "[traffic]\npattern = \"all-to-all\"\nrounds = %d\nrate = %g\nsize = %d\nsenders = [\"n0\"]\ndestinations = [\"n%d\"]\nstart = \"%s\"\n",
		max(r.msgs, 1), rate, r.size, r.hops, start)
	sc, err := Parse([]byte(b.String()), nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	return sc
}

// airtimeMsgs is how many messages the measuring run sends.
const airtimeMsgs = 6

type airtimeResult struct {
	airtime float64 // seconds, all nodes
	bytes   uint64  // on air, all nodes
	sent    int
	deliv   int
}

func (r airtimeRun) run(t *testing.T) airtimeResult {
	t.Helper()
	sum := runScenario(t, r.scenario(t), nil).Summary()
	var bytes uint64
	for k, v := range sum.Bytes {
		if strings.HasPrefix(k, "lora/") {
			bytes += v
		}
	}
	return airtimeResult{airtime: sum.AirtimeS, bytes: bytes, sent: sum.Sent, deliv: sum.Delivered}
}

// airtimeCost is what one delivered message costs on air, end to end
// (every hop, the message and its receipt or acknowledgement), and what
// setting up a session costs, from three runs of one chain: no traffic, one
// message, and n messages.
type airtimeCost struct {
	perMsgAir   float64
	perMsgBytes float64
	setupAir    float64
}

func measureAirtime(t *testing.T, base airtimeRun, n int) airtimeCost {
	t.Helper()
	r0, r1, rn := base, base, base
	r0.msgs, r1.msgs, rn.msgs = 0, 1, n
	a0, a1, an := r0.run(t), r1.run(t), rn.run(t)
	// A message still under way at the end (a sealed envelope at SF12
	// can need hours of retries after collisions) is not counted as
	// delivered, but its airtime is: the cost per delivered message.
	if a1.deliv != 1 || an.deliv < n-1 {
		t.Fatalf("%+v: delivered %d of 1 and %d of %d", base, a1.deliv, an.deliv, n)
	}
	c := airtimeCost{
		perMsgAir:   (an.airtime - a1.airtime) / float64(an.deliv-1),
		perMsgBytes: float64(an.bytes-a1.bytes) / float64(an.deliv-1),
	}
	c.setupAir = a1.airtime - a0.airtime - c.perMsgAir
	return c
}

// TestSessionAirtime compares, in the simulator, what a delivered unicast
// message costs on LoRa as a sealed envelope and over a route session. By
// default it checks one configuration (SF9, 3 hops, 100 bytes); with
// -airtime.table it runs every configuration of docs/performance.md and
// prints the table.
func TestSessionAirtime(t *testing.T) {
	sfs, hopsList, sizes := []int{9}, []int{3}, []int{100}
	if *airtimeTable {
		sfs, hopsList, sizes = []int{9, 12}, []int{1, 3, 5}, []int{50, 100, 200}
	}
	const n = airtimeMsgs
	var rows []string
	for _, sf := range sfs {
		for _, hops := range hopsList {
			for _, size := range sizes {
				env := measureAirtime(t, airtimeRun{sf: sf, hops: hops, size: size}, n)
				ses := measureAirtime(t, airtimeRun{sf: sf, hops: hops, size: size, sessions: true}, n)
				if ses.perMsgAir >= env.perMsgAir/2 {
					t.Errorf("SF%d %d hops %d B: session message %.2f s of airtime, envelope %.2f s", sf, hops, size, ses.perMsgAir, env.perMsgAir)
				}
				first := "n/a" // the envelope runs' retries swamp the difference
				if env.setupAir >= 0 {
					first = fmt.Sprintf("%.1f s", env.setupAir)
				}
				rows = append(rows, fmt.Sprintf("| SF%d | %d | %d | %.0f B / %.2f s | %.0f B / %.2f s | %.1fx | %s / %.1f s |",
					sf, hops, size, env.perMsgBytes, env.perMsgAir, ses.perMsgBytes, ses.perMsgAir, env.perMsgAir/ses.perMsgAir, first, ses.setupAir))
			}
		}
	}
	t.Logf("overhead per unicast frame: session %d B (%d with the message number), sealed envelope %d B + padding, in fragments",
		protocol.SessionFrameOverhead, protocol.SessionMessageOverhead, protocol.SealOverhead)
	t.Log("\n| SF | hops | payload | envelope: bytes / airtime per delivered message | session: bytes / airtime | saving | first message's extra airtime, envelope / session |\n|---|---|---|---|---|---|---|\n" + strings.Join(rows, "\n"))
}
