//go:build !linux

package reactor

// settled reports whether closing fd now loses nothing. Without linux's
// SIOCINQ and SIOCOUTQ it cannot tell, so a closing connection always
// drains (see Conn.endClose).
func settled(int) bool { return false }
