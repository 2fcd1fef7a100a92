package tcp

import (
	"testing"

	"meshd.dev/meshd/protocol"
)

// BenchmarkLinkThroughput sends frames A->B over an established TCP link:
// Send, the writer (one sealed record per frame, batched per write), the
// reader (open, copy) and Recv. The same 256-byte frames as
// transports/p2p's BenchmarkLinkThroughput, and 16 KiB ones.
func BenchmarkLinkThroughput(b *testing.B) {
	for _, size := range []int{256, 16 << 10} {
		name := "256B"
		if size > 256 {
			name = "16KiB"
		}
		b.Run(name, func(b *testing.B) {
			x, y, _, _ := linkedPair(b, Config{}, Config{})
			ctx := testCtx(b)
			frame := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			done := make(chan error, 1)
			go func() {
				for range b.N {
					if _, err := y.Recv(ctx); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			for range b.N {
				if err := x.Send(ctx, frame); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkHandshake is one complete handshake on loopback, both sides:
// two X25519 key pairs and exchanges, HKDF, two Ed25519 signatures and two
// verifications, three round trips' worth of writes.
func BenchmarkHandshake(b *testing.B) {
	ia, ib := newIdentity(b), newIdentity(b)
	b.ReportAllocs()
	for range b.N {
		c, s := connPair(b)
		rs := goHandshake(s, ib, false, protocol.Address{})
		if r := <-goHandshake(c, ia, true, protocol.Address{}); r.err != nil {
			b.Fatal(r.err)
		}
		if r := <-rs; r.err != nil {
			b.Fatal(r.err)
		}
		c.Close()
		s.Close()
	}
}
