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
	verdicts := make(chan error, 1024)
	b.chans.verdicts.Store(&verdicts)

	// Genuine frames until one arrives: gossip has then seen B's
	// subscription.
	for i := 0; ; i++ {
		text := fmt.Sprintf("genuine %d", i)
		if _, err := a.ChannelPublish(ctx, rpcapi.ChannelPublishParams{Channel: ch.ID, Text: text}); err != nil {
			t.Fatal(err)
		}
		wctx, wdone := context.WithTimeout(ctx, 2*time.Second)
		ev := waitKindOrNil(wctx, events, rpcapi.EventChannelMessage)
		wdone()
		if ev != nil {
			break
		}
	}

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
	// B's validator judges the three bad frames (a rogue peer is then
	// scored down, so nothing more is sent).
	for bad := 0; bad < 3; {
		select {
		case err := <-verdicts:
			if err != nil {
				bad++
			}
		case <-ctx.Done():
			t.Fatalf("%d bad frames judged: %v", bad, ctx.Err())
		}
	}
	if f, s := b.chans.stats.forged.Load(), b.chans.stats.stale.Load(); f != 2 || s != 1 {
		t.Errorf("counted %d forged and %d stale frames, want 2 and 1", f, s)
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

func waitKindOrNil(ctx context.Context, ch <-chan rpcapi.Event, kind string) *rpcapi.Event {
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return nil
			}
			if ev.Kind == kind {
				return &ev
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// TestGossipBridgeForgeriesNoPenalty: A is a bridge that does not hold the
// channel, so its engine publishes on gossip every well-formed fresh frame
// heard on a mesh link, forged or not (it cannot check the MAC). An
// attacker on the mesh side, knowing only the channel ID, feeds it forged
// frames. B, a member, must not score A down for them: a graylisted bridge
// would cut every channel between the IP and mesh sides.
func TestGossipBridgeForgeriesNoPenalty(t *testing.T) {
	noLeaks(t)
	a, b, stop := twoNodes(t)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ch, err := b.ChannelCreate(ctx, "ops")
	if err != nil {
		t.Fatal(err)
	}
	share, _ := b.ChannelShare(ctx, ch.ID)
	_, key, _ := rpcapi.ParseChannelShare(share.Share)
	id := key.ID()
	events, cancelSub, _ := b.Subscribe(ctx)
	defer cancelSub()
	relay := func(text string) bool {
		if err := a.host.PublishChannel(ctx, id, sealFor(t, key, time.Now(), text, nil)); err != nil {
			t.Fatal(err)
		}
		wctx, wdone := context.WithTimeout(ctx, 2*time.Second)
		defer wdone()
		return waitKindOrNil(wctx, events, rpcapi.EventChannelMessage) != nil
	}
	for i := 0; !relay(fmt.Sprintf("genuine %d", i)); i++ {
	}
	verdicts := make(chan error, 1024)
	b.chans.verdicts.Store(&verdicts)
	const forgeries = 20
	for range forgeries {
		f := sealFor(t, key, time.Now(), "forged", nil)
		f[len(f)-1] ^= 1
		if err := a.host.PublishChannel(ctx, id, f); err != nil {
			t.Fatal(err)
		}
	}
	for judged := 0; judged < forgeries; judged++ {
		select {
		case <-verdicts:
		case <-ctx.Done():
			t.Fatalf("%d forged frames judged: %v", judged, ctx.Err())
		}
	}
	b.chans.verdicts.Store(nil)
	if !relay("genuine after forgeries") {
		t.Error("B no longer takes genuine frames from the bridge after it relayed forgeries")
	}
}
