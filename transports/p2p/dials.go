package p2p

import "context"

// startDial registers a dial of this host's own (ConnectInfo, a redial):
// it fails with ErrClosed once Close began, and the context it returns
// ends when ctx does or when the host closes. The caller calls done when
// its dial returned; Close waits for every registered dial before it
// closes the libp2p host.
//
// The order matters: a dial with network.WithForceDirectDial that is
// still choosing addresses when libp2p's swarm drops its transports at
// close panics in go-libp2p (v0.51.0 and v0.52.0: Swarm.nonProxyAddr
// calls Proxy on the nil transport TransportForDialing returns once the
// transports are closed), crashing the process.
func (h *Host) startDial(ctx context.Context) (context.Context, func(), error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return nil, nil, ErrClosed
	}
	h.dials.Add(1)
	dctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(h.ctx, cancel)
	return dctx, func() {
		stop()
		cancel()
		h.dials.Done()
	}, nil
}
