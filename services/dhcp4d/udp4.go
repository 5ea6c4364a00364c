package dhcp4d

import (
	"encoding/binary"
	"net/netip"

	"golang.org/x/sys/unix"
)

// A reply to a client that has no address yet goes unicast to the
// offered address at the client's MAC (RFC 2131 section 4.1, see
// Destination). The kernel cannot send that, since the client does not
// answer ARP yet, so the service sends it by packet socket, with the
// headers built here.

// udp4 builds an IPv4 datagram carrying UDP payload from src to dst.
func udp4(src netip.Addr, sport uint16, dst netip.Addr, dport uint16, payload []byte) []byte {
	const ipLen, udpLen = 20, 8
	b := make([]byte, ipLen+udpLen+len(payload))
	b[0] = 0x45 // version 4, header length 5 words
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	b[8] = 64 // TTL
	b[9] = unix.IPPROTO_UDP
	s, d := src.As4(), dst.As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	binary.BigEndian.PutUint16(b[10:], checksum(b[:ipLen], 0))

	u := b[ipLen:]
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(udpLen+len(payload)))
	copy(u[udpLen:], payload)
	// The UDP checksum covers a pseudo-header of addresses, protocol and
	// length.
	var pseudo uint32
	for i := 12; i < 20; i += 2 {
		pseudo += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	pseudo += unix.IPPROTO_UDP + uint32(len(u))
	sum := checksum(u, pseudo)
	if sum == 0 {
		sum = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:], sum)
	return b
}

// checksum is the Internet checksum (RFC 1071) of b, starting from sum.
func checksum(b []byte, sum uint32) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
