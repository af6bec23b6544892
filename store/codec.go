package store

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// logFormatV1 is the first byte of every encoded log entry. A new layout
// gets a new version byte; decodeLog rejects versions it does not know.
//
// Layout (uvarint/varint as in encoding/binary):
//
//	byte     version (1)
//	uvarint  Index
//	uvarint  Term
//	byte     Type
//	uvarint  len(Data), Data
//	uvarint  len(Extensions), Extensions
//	varint   AppendedAt, Unix seconds
//	uvarint  AppendedAt, nanoseconds within the second (< 1e9)
//
// The zero AppendedAt is encoded as its Unix seconds (zeroTimeUnix) with 0
// nanoseconds and decodes back to the zero time.Time.
const logFormatV1 byte = 1

// zeroTimeUnix is time.Time{}.Unix(): 0001-01-01 UTC in Unix seconds.
var zeroTimeUnix = time.Time{}.Unix()

// encodeLog appends the encoding of l to dst and returns the result.
func encodeLog(dst []byte, l *raft.Log) []byte {
	dst = append(dst, logFormatV1)
	dst = binary.AppendUvarint(dst, l.Index)
	dst = binary.AppendUvarint(dst, l.Term)
	dst = append(dst, byte(l.Type))
	dst = binary.AppendUvarint(dst, uint64(len(l.Data)))
	dst = append(dst, l.Data...)
	dst = binary.AppendUvarint(dst, uint64(len(l.Extensions)))
	dst = append(dst, l.Extensions...)
	dst = binary.AppendVarint(dst, l.AppendedAt.Unix())
	dst = binary.AppendUvarint(dst, uint64(l.AppendedAt.Nanosecond()))
	return dst
}

// decodeLog decodes buf into l, overwriting every field. l.Data and
// l.Extensions alias buf (nil when empty): the caller must not reuse buf.
// Any malformed input, including trailing bytes, returns an error wrapping
// ErrCorrupt; it never panics.
func decodeLog(buf []byte, l *raft.Log) error {
	r := decoder{buf: buf}
	if v := r.byte("version"); r.err == nil && v != logFormatV1 {
		return fmt.Errorf("%w: unknown log format version %d", ErrCorrupt, v)
	}
	index := r.uvarint("index")
	term := r.uvarint("term")
	typ := raft.LogType(r.byte("type"))
	data := r.bytes("data")
	ext := r.bytes("extensions")
	sec := r.varint("appended_at seconds")
	nsec := r.uvarint("appended_at nanoseconds")
	if r.err != nil {
		return r.err
	}
	if nsec >= uint64(time.Second) {
		return fmt.Errorf("%w: appended_at nanoseconds %d out of range", ErrCorrupt, nsec)
	}
	if len(r.buf) != 0 {
		return fmt.Errorf("%w: %d trailing bytes after log entry", ErrCorrupt, len(r.buf))
	}
	var at time.Time
	if sec != zeroTimeUnix || nsec != 0 {
		at = time.Unix(sec, int64(nsec))
	}
	*l = raft.Log{
		Index:      index,
		Term:       term,
		Type:       typ,
		Data:       data,
		Extensions: ext,
		AppendedAt: at,
	}
	return nil
}

// decoder reads fields from buf; after the first error every read returns
// a zero value and err keeps that first error.
type decoder struct {
	buf []byte
	err error
}

func (d *decoder) fail(field string) {
	d.err = fmt.Errorf("%w: truncated or malformed log %s", ErrCorrupt, field)
}

func (d *decoder) byte(field string) byte {
	if d.err != nil {
		return 0
	}
	if len(d.buf) == 0 {
		d.fail(field)
		return 0
	}
	b := d.buf[0]
	d.buf = d.buf[1:]
	return b
}

func (d *decoder) uvarint(field string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.fail(field)
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) varint(field string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.buf)
	if n <= 0 {
		d.fail(field)
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

// bytes reads a uvarint length and that many bytes; nil when the length is 0.
func (d *decoder) bytes(field string) []byte {
	n := d.uvarint(field + " length")
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.buf)) {
		d.fail(field)
		return nil
	}
	if n == 0 {
		return nil
	}
	b := d.buf[:n:n]
	d.buf = d.buf[n:]
	return b
}
