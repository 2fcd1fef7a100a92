package daemon

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"meshd.dev/meshd/rpcapi"
)

// TestAttackSlowReadersQueueBudget: three libp2p neighbours that never
// read are sent large messages by the victim's app (any source of traffic
// towards them does: forwarding, gossip, custody): each could hold the
// engine's queue for it and its link's send queue, about 8 MiB. With
// limits.queue_budget at 4 MiB the victim holds no more than that (one
// link's share of slack), and an honest neighbour still gets every
// message sent to it. Before (no budget) the victim held 20.0 MiB for
// them (8.2 MiB in its engine queues, 11.8 MiB in the links' send
// queues); now 3.9 MiB.
func TestAttackSlowReadersQueueBudget(t *testing.T) {
	noLeaks(t)
	const budget, size, slowPeers, perSlow = 4 << 20, 60 << 10, 3, 200
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cfg := testConfig(t)
	cfg.Limits.QueueBudget = budget
	victim, stop := startNode(t, cfg)
	t.Cleanup(stop)
	honest, stop := startNode(t, testConfig(t))
	t.Cleanup(stop)
	linkNodes(t, victim, honest)
	subHonest := honest.hub.add(8192)
	defer honest.hub.remove(subHonest)

	gate := make(chan struct{})
	defer close(gate)
	var slow []*Node
	for range slowPeers {
		s, stop := startNode(t, testConfig(t))
		t.Cleanup(stop)
		linkNodes(t, victim, s)
		sub := s.hub.add(64)
		if _, err := victim.Send(ctx, rpcapi.SendParams{To: s.id.Address().String(), Text: "hello"}); err != nil {
			t.Fatal(err)
		}
		waitText(t, ctx, sub.ch, "hello")
		s.hub.remove(sub)
		go func() { _ = s.call(ctx, func() { <-gate }) }() // it reads no more
		slow = append(slow, s)
	}

	body := make([]byte, size)
	_, _ = rand.NewChaCha8([32]byte{2}).Read(body)
	for i := range perSlow {
		for _, s := range slow {
			copy(body, fmt.Sprintf("m%06d", i))
			if _, err := victim.Send(ctx, rpcapi.SendParams{To: s.id.Address().String(), Payload: body, SealedSender: true}); err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
		}
	}
	// What the victim holds for the slow readers once their links take
	// nothing more: the engine's queues and the links' send queues.
	held := func() (engine, links int) {
		_ = victim.call(ctx, func() { engine = int(victim.eng.Counters().QueuedBytes) })
		for _, s := range slow {
			links += victim.host.LinkQueueBytes(s.host.ID())
		}
		return engine, links
	}
	var engine, links int
	for same := 0; same < 10; {
		e, l := held()
		if e == engine && l == links {
			same++
		} else {
			same = 0
		}
		engine, links = e, l
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}

	// The honest neighbour gets every message sent to it meanwhile.
	const honestMsgs = 20
	for i := range honestMsgs {
		if _, err := victim.Send(ctx, rpcapi.SendParams{To: honest.id.Address().String(), Text: fmt.Sprintf("honest %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range honestMsgs {
		waitText(t, ctx, subHonest.ch, fmt.Sprintf("honest %d", i))
	}
	runtime.GC() // what is live, not what the collector has yet to free
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var budgetDrops, engHeld uint64
	_ = victim.call(ctx, func() { c := victim.eng.Counters(); budgetDrops, engHeld = c.QueueBudgetDrops, c.QueueHeldBytes })
	t.Logf("the engine counts %d bytes held", engHeld)
	t.Logf("%d slow readers sent %d x %d bytes each: the victim holds %d bytes in its engine queues and %d in their send queues (%.1f MiB; budget %d MiB); %d frames refused or shed for the budget; heap in use %.1f MiB (all nodes of the test)",
		slowPeers, perSlow, size, engine, links, float64(engine+links)/(1<<20), budget>>20, budgetDrops, float64(ms.HeapInuse)/(1<<20))
	if engine+links > budget+budget/(slowPeers+1)+size {
		t.Errorf("the victim holds %d bytes for slow readers, budget %d", engine+links, budget)
	}
}
