// Package holder is the holder-input seam of the tap pipeline and its local
// endpoint: a flow asks for a PIN, the signature password or collation
// number B through Input.Ask, separately from the display and without a
// card deadline (the time a person takes to type is not card I/O time).
//
// Server implements Input over a Unix socket that a PIN pad, the kiosk
// screen, the demo and the tests connect to. Secrets never cross the
// network: the socket is local, mode 0600 in a directory created 0700, and
// every peer's uid is checked with SO_PEERCRED (only the server's own uid
// or root may connect). Nothing secret is logged, and no error string
// carries a typed value.
//
// # Protocol
//
// Line-delimited JSON: one object per line, terminated by "\n", at most
// 4 KiB per line (longer lines close the connection). Unknown members
// with scalar values are ignored; client lines with nested objects or
// arrays, duplicate members or invalid JSON are rejected.
//
// Server to client:
//
//	{"type":"request","id":7,"kind":"auth-pin","tries_left":3,"profile":"pin-auth"}
//	{"type":"done","id":7}
//	{"type":"error","id":7,"error":"format: auth-pin needs exactly 4 digits"}
//	{"type":"attributes","profile":"attributes","name":"…","address":"…","birth_date":"19800217","sex":"1"}
//
// A "request" is sent to every connected client, and to a client that
// connects while it is pending. kind is one of auth-pin, support-pin
// (4 digits), collation-b (14 digits), sign-password (6–16 of A–Z 0–9;
// a–z are upper-cased by the server). ids increase; at most one request
// is pending. "done" ends a request for everyone (answered by some client,
// cancelled, timed out, or abandoned by the pipeline): clear the prompt.
// "error" answers a badly formed answer; the request stays pending and the
// value is never echoed. "attributes" carries verified basic 4 information
// (individual_number only in a profile permitted to read it) from
// Server.Deliver; display it, never store it.
//
// Client to server:
//
//	{"type":"answer","id":7,"value":"1234"}
//	{"type":"cancel","id":7}
//
// The first well-formed answer (or cancel) for the pending id wins; lines
// for another id are ignored. A line that is not a valid message gets an
// "error" with id 0 and is otherwise ignored.
//
// # Secret buffers
//
// The server reads each connection into a fixed buffer it owns and parses
// answer lines with a small hand-written scanner instead of encoding/json,
// so the value is never turned into a string (strings cannot be zeroed) and
// no copy is left in a decoder's buffers. The value is decoded straight
// into a fresh slice that becomes the Secret; the line bytes are zeroed as
// soon as the line is parsed, and a rejected value is zeroed at once. What
// remains outside this package's reach: kernel socket buffers, and the
// client's own copies (Client zeroes the line it built after writing it).
// Ask's caller owns the Secret and must call Zero after presenting it.
package holder
