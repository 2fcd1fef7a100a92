package p2p

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"

	"meshd.dev/meshd/protocol"
)

const (
	benchGossipHosts = 50
	// benchGossipMessages are published per benchmark iteration, one at a
	// time (each after the previous reached every member), so one run
	// yields 49 x 20 latencies.
	benchGossipMessages = 20
)

// arrival is one frame reaching one member.
type arrival struct {
	node int
	key  [protocol.ChannelDedupKeySize]byte
	at   time.Time
}

// gossipBench is one side of BenchmarkGossipChannel: 50 hosts on the same
// random graph, a way to publish from node 0, and the arrivals.
type gossipBench struct {
	publish    func(ctx context.Context, frame []byte) error
	arrivals   chan arrival
	duplicates func() uint64 // copies gossipsub dropped as seen, all nodes
}

// BenchmarkGossipChannel publishes one channel frame at a time from one of
// 50 in-process hosts (loopback TCP, a sparse random graph: a ring plus a
// random chord per node, DHT in client mode so it adds no connections) and
// measures when each of the 49 others receives it:
//   - meshd: channel topics as the daemon runs them (validator that parses
//     the frame, checks freshness and the MAC with the channel key; the
//     message ID from the frame; no gossipsub signatures; flood publish;
//     meshd's peer scoring), received at Deliver;
//   - raw: go-libp2p-pubsub with its defaults (messages signed by the
//     publishing peer and verified, ID = author + sequence number, no
//     validator), publishing the same bytes, received at Subscription.Next;
//   - raw-unsigned: the same without signatures or author (StrictNoSign,
//     ID = SHA-256 of the data): what meshd's side adds is then only its
//     validator, message ID function, flood publish and scoring.
//
// Reported: p50 and p99 latency in ms, duplicates reaching the application
// per node (must be 0), and copies gossipsub received and dropped as
// duplicates per node (the network's redundancy).
func BenchmarkGossipChannel(b *testing.B) {
	for _, side := range []string{"meshd", "raw", "raw-unsigned"} {
		b.Run(side, func(b *testing.B) {
			key := testChannelKey(b, 50)
			var gb *gossipBench
			switch side {
			case "meshd":
				gb = newMeshdBench(b, key)
			case "raw":
				gb = newRawBench(b, key)
			default:
				gb = newRawBench(b, key, pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign), pubsub.WithNoAuthor(),
					pubsub.WithMessageIdFn(func(m *pb.Message) string {
						sum := sha256.Sum256(m.GetData())
						return string(sum[:])
					}))
			}
			runGossipBench(b, gb, key)
		})
	}
}

func runGossipBench(b *testing.B, gb *gossipBench, key protocol.ChannelKey) {
	ctx := testContext(b)
	seal := newFrameSealer(50)
	var lat []time.Duration
	delivered := make(map[[protocol.ChannelDedupKeySize]byte]map[int]int)
	dupApp := 0
	dup0 := gb.duplicates()
	b.ResetTimer()
	for b.Loop() {
		for range benchGossipMessages {
			frame := seal.seal(b, key, "benchmark message of a broadcast channel")
			f, _ := protocol.ParseChannelFrame(frame)
			k := f.DedupKey()
			delivered[k] = make(map[int]int)
			start := time.Now()
			if err := gb.publish(ctx, frame); err != nil {
				b.Fatal(err)
			}
			for len(delivered[k]) < benchGossipHosts-1 {
				select {
				case a := <-gb.arrivals:
					seen := delivered[a.key]
					if seen == nil {
						b.Fatalf("arrival of a frame not published")
					}
					seen[a.node]++
					if seen[a.node] > 1 {
						dupApp++
						continue
					}
					if a.key == k {
						lat = append(lat, a.at.Sub(start))
					}
				case <-ctx.Done():
					b.Fatalf("%d of %d members got the frame: %v", len(delivered[k]), benchGossipHosts-1, ctx.Err())
				}
			}
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(dupApp)/float64(benchGossipHosts-1), "app-dups/node")
	b.ReportMetric(float64(gb.duplicates()-dup0)/float64(benchGossipHosts*benchGossipMessages*b.N), "net-dups/node/msg")
}

// benchHosts starts 50 hosts and connects them on the benchmark graph.
func benchHosts(b *testing.B, edit func(i int, c *Config)) []*Host {
	ctx := testContext(b)
	hosts := make([]*Host, benchGossipHosts)
	for i := range hosts {
		hosts[i] = newTestHost(b, 500+uint64(i), func(c *Config) {
			c.DHTMode = "client"
			c.Logger = slog.New(slog.DiscardHandler) // 50 hosts' info logs
			if edit != nil {
				edit(i, c)
			}
		})
	}
	for _, e := range meshGraph(benchGossipHosts, 50) {
		if _, err := hosts[e[0]].Connect(ctx, hosts[e[1]].Addrs()[0]); err != nil {
			b.Fatal(err)
		}
	}
	return hosts
}

func newMeshdBench(b *testing.B, key protocol.ChannelKey) *gossipBench {
	ctx := testContext(b)
	id := key.ID()
	gb := &gossipBench{arrivals: make(chan arrival, 4096)}
	hosts := benchHosts(b, func(i int, c *Config) {
		n := &gossipNode{keys: map[protocol.ChannelID]protocol.ChannelKey{id: key}}
		c.Gossip = GossipConfig{Enabled: true, Validate: n.validate, Deliver: func(frame []byte) {
			at := time.Now()
			f, err := protocol.ParseChannelFrame(frame)
			if err != nil {
				panic(err)
			}
			gb.arrivals <- arrival{node: i, key: f.DedupKey(), at: at}
		}}
	})
	for _, h := range hosts {
		if err := h.JoinChannel(id); err != nil {
			b.Fatal(err)
		}
	}
	waitFor(b, ctx, "meshes", func() bool {
		for _, h := range hosts {
			if h.ChannelMeshPeers(id) == 0 {
				return false
			}
		}
		return true
	})
	gb.publish = func(ctx context.Context, frame []byte) error { return hosts[0].PublishChannel(ctx, id, frame) }
	gb.duplicates = func() (n uint64) {
		for _, h := range hosts {
			n += h.GossipStats().Duplicates
		}
		return n
	}
	return gb
}

func newRawBench(b *testing.B, key protocol.ChannelKey, opts ...pubsub.Option) *gossipBench {
	ctx := testContext(b)
	gb := &gossipBench{arrivals: make(chan arrival, 4096)}
	hosts := benchHosts(b, nil)
	topicName := ChannelTopic(key.ID())
	tracers := make([]*meshTracer, len(hosts))
	var topic0 *pubsub.Topic
	for i, h := range hosts {
		psCtx, cancel := context.WithCancel(context.Background())
		tracers[i] = newMeshTracer(nil)
		ps, err := pubsub.NewGossipSub(psCtx, h.Libp2p(), append(opts, pubsub.WithRawTracer(tracers[i]))...)
		if err != nil {
			b.Fatal(err)
		}
		topic, err := ps.Join(topicName)
		if err != nil {
			b.Fatal(err)
		}
		sub, err := topic.Subscribe()
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			topic0 = topic
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				m, err := sub.Next(psCtx)
				if err != nil {
					return
				}
				if m.ReceivedFrom == h.ID() {
					continue
				}
				at := time.Now()
				f, err := protocol.ParseChannelFrame(m.GetData())
				if err != nil {
					panic(fmt.Sprint("raw bench: ", err))
				}
				select {
				case gb.arrivals <- arrival{node: i, key: f.DedupKey(), at: at}:
				case <-psCtx.Done():
					return
				}
			}
		})
		b.Cleanup(func() { sub.Cancel(); cancel(); wg.Wait() })
	}
	waitFor(b, ctx, "meshes", func() bool {
		for _, t := range tracers {
			if t.meshPeers(topicName) == 0 {
				return false
			}
		}
		return true
	})
	gb.publish = func(ctx context.Context, frame []byte) error { return topic0.Publish(ctx, frame) }
	gb.duplicates = func() (n uint64) {
		for _, t := range tracers {
			n += t.duplicates.Load()
		}
		return n
	}
	return gb
}
