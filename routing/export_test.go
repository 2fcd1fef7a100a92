package routing

import "meshd.dev/meshd/protocol"

// SealSessionAckForTest seals, under e's responder session with peer, an
// acknowledgement of the test's choosing: what a hostile recipient can
// send (it holds the session keys).
func SealSessionAckForTest(e *Engine, peer Address, a protocol.SessionAck) []byte {
	for _, label := range e.sortedSessions() {
		se := e.sessions[label]
		if se.s != nil && !se.s.Initiator() && se.peer == peer {
			pt, _ := a.AppendBinary(nil)
			f, err := se.s.Seal(true, pt)
			if err != nil {
				return nil
			}
			return f
		}
	}
	return nil
}
