package sim

import (
	"errors"
	"strings"
	"testing"
)

const channelsDoc = `name = "channels"
seed = 4
duration = "2h"

[radio]
sf = 9

[[nodes]]
name = "a"
lora = true
x = 0.0
y = 0.0

[[nodes]]
name = "b"
lora = true
x = 60.0
y = 0.0

[[nodes]]
name = "c"
lora = true
x = 0.0
y = 60.0
%s
[[nodes]]
name = "d"
lora = true
x = 60.0
y = 60.0
%s
`

// TestNodeChannels: a node on another SF or frequency hears none of the
// others' frames (and they none of its), but sends its own; with every
// node on the radio's channel all hear each other.
func TestNodeChannels(t *testing.T) {
	run := func(c, d string) map[string]NodeStats {
		t.Helper()
		doc := strings.Replace(strings.Replace(channelsDoc, "%s", c, 1), "%s", d, 1)
		sc, err := Parse([]byte(doc), nil)
		if err != nil {
			t.Fatal(err)
		}
		s := runScenario(t, sc, nil)
		out := map[string]NodeStats{}
		for _, n := range []string{"a", "b", "c", "d"} {
			out[n], _ = s.Stats(n)
		}
		return out
	}
	same := run("", "")
	for n, st := range same {
		if st.FramesReceived == 0 || st.FramesSent == 0 {
			t.Fatalf("one channel: %s sent %d, received %d", n, st.FramesSent, st.FramesReceived)
		}
	}
	// c alone on SF12, d alone on 868.3 MHz: neither hears anyone.
	split := run("sf = 12\n", "frequency_hz = 868300000\n")
	for _, n := range []string{"c", "d"} {
		if st := split[n]; st.FramesSent == 0 || st.FramesReceived != 0 {
			t.Errorf("%s on its own channel: sent %d, received %d", n, st.FramesSent, st.FramesReceived)
		}
	}
	if split["a"].FramesReceived == 0 || split["a"].FramesReceived >= same["a"].FramesReceived {
		t.Errorf("a received %d frames with c and d elsewhere, %d with all on one channel", split["a"].FramesReceived, same["a"].FramesReceived)
	}
	// c and d together on SF12 hear each other.
	pair := run("sf = 12\n", "sf = 12\n")
	if pair["c"].FramesReceived == 0 || pair["d"].FramesReceived == 0 {
		t.Errorf("c and d on SF12 do not hear each other: %d %d", pair["c"].FramesReceived, pair["d"].FramesReceived)
	}
}

func TestNodeChannelErrors(t *testing.T) {
	for _, tc := range []struct{ c, want string }{
		{"sf = 13\n", "line 25, column 1: nodes.2.sf: 13 not in 7..12"},
		{"frequency_hz = 866000000\nsf = 12\n", ""},
		{"frequency_hz = 869300000\n", "line 25, column 1: nodes.2.frequency_hz: 869300000: radio: channel outside every sub-band"},
		{"frequency_hz = 867950000\n", "channel outside every sub-band"}, // straddles h1.4 and g1
	} {
		doc := strings.Replace(strings.Replace(channelsDoc, "%s", tc.c, 1), "%s", "", 1)
		_, err := Parse([]byte(doc), nil)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%q: %v", tc.c, err)
			}
			continue
		}
		if !errors.Is(err, ErrScenario) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant %q", tc.c, err, tc.want)
		}
	}
	doc := strings.Replace(strings.Replace(channelsDoc, "lora = true\nx = 0.0\ny = 60.0\n%s", "x = 0.0\ny = 60.0\nsf = 10\n", 1), "%s", "", 1)
	if _, err := Parse([]byte(doc), nil); err == nil || !strings.Contains(err.Error(), "has a channel but no radio") {
		t.Errorf("channel without radio: %v", err)
	}
}
