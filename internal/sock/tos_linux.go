package sock

import "golang.org/x/sys/unix"

// linux reports a received TOS byte as IP_TOS.
const ipTOSCmsgType = unix.IP_TOS
