package rpcapi

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// errTooLarge ends a connection whose client sent a request above
// MaxRequestBytes.
var errTooLarge = fmt.Errorf("rpcapi: request exceeds %d bytes", MaxRequestBytes)

// tooLargeResponse is the error response sent before hanging up on an
// oversized request. The request was not parsed, so its id is unknown.
var tooLargeResponse = fmt.Appendf(nil, `{"jsonrpc":"2.0","id":null,"error":{"code":%d,"message":"request exceeds %d bytes (MaxRequestBytes); the connection will be closed"}}`, CodeTooLarge, MaxRequestBytes)

// lineChannel is newline-delimited JSON over a stream (jrpc2's
// channel.Line with a bound on the line length and a write deadline).
type lineChannel struct {
	nc  net.Conn
	r   *bufio.Reader
	max int // 0: unbounded (the client trusts its daemon)

	wmu sync.Mutex
}

func newLineChannel(nc net.Conn, max int) *lineChannel {
	return &lineChannel{nc: nc, r: bufio.NewReaderSize(nc, 64<<10), max: max}
}

// Recv returns the next non-blank line without its newline. A final line
// without a newline is returned together with io.EOF, as jrpc2 expects.
func (c *lineChannel) Recv() ([]byte, error) {
	for {
		line, err := c.readLine()
		if err != nil && (len(line) == 0 || !errors.Is(err, io.EOF)) {
			return nil, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			if err != nil {
				return nil, err
			}
			continue // blank lines (from a human at nc) are ignored
		}
		return line, err
	}
}

func (c *lineChannel) readLine() ([]byte, error) {
	var buf []byte
	for {
		chunk, err := c.r.ReadSlice('\n')
		if c.max > 0 && len(buf)+len(chunk) > c.max+1 {
			c.send(tooLargeResponse)
			c.nc.Close()
			return nil, errTooLarge
		}
		if err == bufio.ErrBufferFull {
			buf = append(buf, chunk...)
			continue
		}
		if buf == nil {
			buf = make([]byte, len(chunk))
			copy(buf, chunk)
		} else {
			buf = append(buf, chunk...)
		}
		if err != nil {
			return buf, err
		}
		buf = buf[:len(buf)-1]
		if n := len(buf); n > 0 && buf[n-1] == '\r' {
			buf = buf[:n-1]
		}
		return buf, nil
	}
}

// Send writes msg and a newline. A failed or timed-out write closes the
// connection, so a client that stopped reading cannot stall the server.
func (c *lineChannel) Send(msg []byte) error {
	if bytes.IndexByte(msg, '\n') >= 0 {
		return errors.New("rpcapi: message contains a newline")
	}
	return c.send(msg)
}

func (c *lineChannel) send(msg []byte) error {
	out := make([]byte, len(msg)+1)
	copy(out, msg)
	out[len(msg)] = '\n'
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := c.nc.Write(out); err != nil {
		c.nc.Close()
		return err
	}
	return nil
}

func (c *lineChannel) Close() error { return c.nc.Close() }

// wsChannel is one JSON-RPC message per WebSocket message.
type wsChannel struct {
	ctx context.Context // ends the connection when cancelled
	ws  *websocket.Conn
	max int64 // 0: unbounded
}

func newWSChannel(ctx context.Context, ws *websocket.Conn, max int64) *wsChannel {
	// We bound messages ourselves so that an oversized one gets a JSON-RPC
	// error before the close.
	ws.SetReadLimit(-1)
	return &wsChannel{ctx: ctx, ws: ws, max: max}
}

func (c *wsChannel) Recv() ([]byte, error) {
	for {
		_, r, err := c.ws.Reader(c.ctx)
		if err != nil {
			return nil, err
		}
		var lr io.Reader = r
		if c.max > 0 {
			lr = io.LimitReader(r, c.max+1)
		}
		msg, err := io.ReadAll(lr)
		if err != nil {
			return nil, err
		}
		if c.max > 0 && int64(len(msg)) > c.max {
			c.Send(tooLargeResponse)
			c.ws.Close(websocket.StatusMessageTooBig, "request exceeds MaxRequestBytes")
			return nil, errTooLarge
		}
		if len(bytes.TrimSpace(msg)) == 0 {
			continue
		}
		return msg, nil
	}
}

func (c *wsChannel) Send(msg []byte) error {
	ctx, cancel := context.WithTimeout(c.ctx, writeTimeout)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, msg); err != nil {
		c.ws.CloseNow()
		return err
	}
	return nil
}

func (c *wsChannel) Close() error { return c.ws.CloseNow() }
