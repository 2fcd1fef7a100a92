package routing_test

import (
	"fmt"
	"testing"
	"time"
)

// TestSessionKeepsSendOrder: messages an app sends to a destination while
// the session to it is still being set up go out, once it is, in the
// order they were sent, so that on a lossless link they arrive in that
// order. Before, the engine retried them in the order of their random
// message keys: two messages sent a moment apart (meshctl send twice
// while the handshake was under way) arrived the other way round half
// the time.
func TestSessionKeepsSendOrder(t *testing.T) {
	n, _, nb, _ := sessionPair(t, false, nil)
	var want []string
	for i := range 20 {
		m := fmt.Sprintf("m%02d", i)
		n.send("a", "b", m)
		want = append(want, m)
	}
	n.run(time.Minute)
	var got []string
	for _, d := range nb.inbox {
		got = append(got, string(d.Body))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("arrived in the order\n%v\nwant\n%v", got, want)
	}
}
