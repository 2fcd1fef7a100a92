package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
)

// ErrNotify: telling the service manager (systemd) about a state change
// failed.
var ErrNotify = errors.New("daemon: sd_notify")

// sdNotify sends state (e.g. "READY=1") to the service manager that
// started meshd with Type=notify, over the datagram socket named in
// $NOTIFY_SOCKET; without that variable it does nothing and returns false.
// It is the whole of the sd_notify protocol meshd needs: one datagram of
// newline-separated KEY=VALUE lines.
func sdNotify(state string) (bool, error) {
	socket := os.Getenv("NOTIFY_SOCKET")
	if socket == "" {
		return false, nil
	}
	return true, notifySocket(socket, state)
}

// notifySocket sends one datagram to socket; a leading "@" names a Linux
// abstract socket.
func notifySocket(socket, state string) error {
	name := socket
	if name[0] == '@' {
		name = "\x00" + name[1:]
	} else if name[0] != '/' {
		return fmt.Errorf("%w: NOTIFY_SOCKET=%q is neither a path nor an abstract socket (@name)", ErrNotify, socket)
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotify, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("%w: %w", ErrNotify, err)
	}
	return nil
}

// announceReady logs the "ready" line (what an operator or a script waits
// for: the version and every address the node answers on) and tells
// systemd, for Type=notify units, that start-up is over.
func announceReady(log *slog.Logger, n *Node, socket, httpAddr string) {
	info, _ := n.Info(context.Background()) // a snapshot read; never fails
	log.Info("ready", "version", Version, "address", info.Address, "peer_id", info.PeerID,
		"listen", info.ListenAddrs, "tcp_listen", info.TCPListen, "api_socket", socket, "api_http", httpAddr)
	notify(log, "READY=1\nSTATUS=ready: "+info.Address)
}

// notify sends state to systemd, logging (not failing on) an error: a
// broken notify socket must not stop a node that otherwise runs.
func notify(log *slog.Logger, state string) {
	if sent, err := sdNotify(state); err != nil {
		log.Warn("telling systemd the state failed", "state", state, "err", err)
	} else if sent {
		log.Debug("told systemd", "state", state)
	}
}
