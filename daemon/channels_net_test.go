package daemon

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/rpcapi"
)

// TestGossipDropsBadFrames: two nodes with real gossip share a channel; A's
// host publishes forged, oversized and foreign frames straight onto the
// topic (a host does not validate its own publishes, so this is what a
// rogue member's node would send). B's validator drops and counts them,
// and only genuine frames reach B's application.
func TestGossipDropsBadFrames(t *testing.T) {
	noLeaks(t)
	a, b, stop := twoNodes(t)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ch, err := a.ChannelCreate(ctx, "ops")
	if err != nil {
		t.Fatal(err)
	}
	share, _ := a.ChannelShare(ctx, ch.ID)
	name, key, _ := rpcapi.ParseChannelShare(share.Share)
	if _, err := b.ChannelJoin(ctx, name, key); err != nil {
		t.Fatal(err)
	}
	events, cancelSub, _ := b.Subscribe(ctx)
	defer cancelSub()
	id := key.ID()

	forged := sealFor(t, key, time.Now(), "forged", nil)
	forged[len(forged)-1] ^= 1
	otherKey := protocol.ChannelKey{9}
	foreign := sealFor(t, otherKey, time.Now(), "foreign", nil)
	copy(foreign[2:6], id[:]) // claims the channel, keyed by another
	stale := sealFor(t, key, time.Now().Add(-time.Hour), "stale", nil)
	for _, f := range [][]byte{forged, foreign, stale} {
		if err := a.host.PublishChannel(ctx, id, f); err != nil {
			t.Fatal(err)
		}
	}
	big, err := protocol.SealChannel(rand.Reader, key, 5, time.Now(), bytes.Repeat([]byte{1}, protocol.MaxChannelFrameSize-protocol.ChannelOverhead), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.host.PublishChannel(ctx, id, append(big, 0)); err == nil {
		t.Error("the host published a frame above the size limit")
	}
	// Genuine frames until B has judged the bad ones (gossip validates
	// concurrently, so the order of verdicts is not the order sent).
	for i := 0; b.chans.stats.forged.Load() < 2 || b.chans.stats.stale.Load() < 1; i++ {
		text := fmt.Sprintf("genuine %d", i)
		if _, err := a.ChannelPublish(ctx, rpcapi.ChannelPublishParams{Channel: ch.ID, Text: text}); err != nil {
			t.Fatal(err)
		}
		for {
			ev := waitKind(t, ctx, events, rpcapi.EventChannelMessage)
			if m := ev.ChannelMessage; m.Text != text {
				if !bytes.HasPrefix(m.Payload, []byte("genuine ")) {
					t.Fatalf("a bad frame reached the application: %+v", m)
				}
				continue
			}
			break
		}
	}
	if err := b.call(ctx, func() {}); err != nil {
		t.Fatal(err)
	}
	page, _ := b.ChannelHistory(ctx, rpcapi.ChannelHistoryParams{Channel: ch.ID, Limit: 1000})
	for _, m := range page.Messages {
		if !bytes.HasPrefix(m.Payload, []byte("genuine ")) {
			t.Errorf("a bad frame is in the history: %q", m.Text)
		}
	}
}
