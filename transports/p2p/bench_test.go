package p2p

import (
	"bufio"
	"io"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
)

const benchFrame = 256

// BenchmarkLinkThroughput sends 256-byte frames A->B over the meshd link:
// Send, the per-link writer, framing, the reader and the Events channel.
func BenchmarkLinkThroughput(b *testing.B) {
	ctx := testContext(b)
	x := newTestHost(b, 40, nil)
	y := newTestHost(b, 41, nil)
	connectPair(b, ctx, x, y)
	frame := make([]byte, benchFrame)
	b.SetBytes(benchFrame)
	b.ReportAllocs()
	b.ResetTimer()
	done := make(chan error, 1)
	go func() {
		for n := 0; n < b.N; {
			select {
			case ev := <-y.Events():
				if _, ok := ev.(Frame); ok {
					n++
				}
			case <-ctx.Done():
				done <- ctx.Err()
				return
			}
		}
		done <- nil
	}()
	for range b.N {
		if err := x.Send(ctx, y.ID(), frame); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRawStream moves the same bytes over a plain libp2p stream
// between the same kind of hosts: "unbuffered" writes each 256 bytes as
// its own stream write, "buffered" through a 64 KiB bufio.Writer (what the
// link writer does). The receiver reads 256-byte chunks.
func BenchmarkRawStream(b *testing.B) {
	for _, buffered := range []bool{false, true} {
		name := "unbuffered"
		if buffered {
			name = "buffered"
		}
		b.Run(name, func(b *testing.B) {
			ctx := testContext(b)
			x := newTestHost(b, 42, nil)
			y := newTestHost(b, 43, nil)
			const proto = "/meshd/bench-raw/1.0.0"
			done := make(chan error, 1)
			n := b.N
			y.Libp2p().SetStreamHandler(proto, func(s network.Stream) {
				defer s.Close()
				r := bufio.NewReader(s)
				buf := make([]byte, benchFrame)
				for range n {
					if _, err := io.ReadFull(r, buf); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			})
			if _, err := x.Connect(ctx, y.Addrs()[0]); err != nil {
				b.Fatal(err)
			}
			s, err := x.Libp2p().NewStream(ctx, y.ID(), proto)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Reset()
			var w io.Writer = s
			bw := bufio.NewWriterSize(s, 64<<10)
			if buffered {
				w = bw
			}
			frame := make([]byte, benchFrame)
			b.SetBytes(benchFrame)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := w.Write(frame); err != nil {
					b.Fatal(err)
				}
			}
			if err := bw.Flush(); err != nil {
				b.Fatal(err)
			}
			select {
			case err := <-done:
				if err != nil {
					b.Fatal(err)
				}
			case <-ctx.Done():
				b.Fatal(ctx.Err())
			}
		})
	}
}
