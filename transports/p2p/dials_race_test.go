package p2p

import (
	"context"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// TestCloseDuringManyDials: Close while many goroutines call ConnectInfo,
// some to a silent listener (another peer's id: libp2p merges
// concurrent dials to one peer), some to a live peer, some starting after
// Close began, and Close called twice at once. Every call returns, Close
// returns, and no dial is left running (go test -race, -count).
func TestCloseDuringManyDials(t *testing.T) {
	a := newTestHost(t, 1, nil)
	b := newTestHost(t, 2, nil)
	c := newTestHost(t, 3, nil) // dialed only at the silent listener
	silent, accepted := silentListener(t)
	live := b.host.Addrs()
	var wg sync.WaitGroup
	dial := func(i int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ai := peer.AddrInfo{ID: c.ID(), Addrs: []ma.Multiaddr{silent}}
			if i%2 == 0 {
				ai = peer.AddrInfo{ID: b.ID(), Addrs: live}
			}
			_ = a.ConnectInfo(context.Background(), ai)
		}()
	}
	for i := range 16 {
		dial(i)
	}
	<-accepted // at least one dial is in its handshake
	var closers sync.WaitGroup
	for range 2 {
		closers.Add(1)
		go func() {
			defer closers.Done()
			if err := a.Close(); err != nil {
				t.Error(err)
			}
		}()
	}
	for i := range 16 {
		dial(i) // while Close runs, or after it
	}
	closers.Wait()
	wg.Wait()
	if err := a.ConnectInfo(context.Background(), peer.AddrInfo{ID: b.ID(), Addrs: live}); err != ErrClosed {
		t.Fatalf("ConnectInfo after Close: %v, want ErrClosed", err)
	}
}
