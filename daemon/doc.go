// Package daemon is meshd itself: configuration (file, environment, flags),
// the identity key file, the node loop that drives the routing engine with
// badger persistence and the libp2p host, the rpcapi.Node implementation,
// and Main, which runs all of it until a signal stops it. New, Start and
// Close run a node inside another Go program (Main uses them too; see the
// Example). The binary is
// daemon/cmd/meshd; docs/operations.md is the operator's guide.
package daemon
