package conformance

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// deflateTail is what a sync flush ends with; RFC 7692 (section 7.2.1)
// strips it from each compressed message and the reader adds it back.
const deflateTail = "\x00\x00\xff\xff"

// windowSize is the LZ77 window of compress/flate, the largest RFC 7692
// allows (15 bits).
const windowSize = 1 << 15

// deflateParams is a permessage-deflate agreement: the server's response
// to the client's offer.
type deflateParams struct {
	clientNoContextTakeover bool
	serverNoContextTakeover bool
	serverMaxWindowBits     int // 0: not given (15)
	clientMaxWindowBits     int // 0: not given (15)
}

// parseDeflateResponse checks the server's Sec-WebSocket-Extensions
// answer against the offer, as a client must (RFC 7692, section 7.1):
// at most one permessage-deflate, only known parameters, each once, and
// client_max_window_bits only if offered. An empty answer means the
// server declined (ok false, no error).
func parseDeflateResponse(answer, offer string) (p deflateParams, ok bool, err error) {
	answer = strings.TrimSpace(answer)
	if answer == "" {
		return p, false, nil
	}
	if offer == "" {
		return p, false, fmt.Errorf("server answered extension %q that was not offered", answer)
	}
	if strings.Contains(answer, ",") {
		return p, false, fmt.Errorf("server accepted more than one extension: %q", answer)
	}
	parts := strings.Split(answer, ";")
	if strings.TrimSpace(parts[0]) != "permessage-deflate" {
		return p, false, fmt.Errorf("server answered unknown extension %q", answer)
	}
	seen := map[string]bool{}
	for _, raw := range parts[1:] {
		name, value, hasValue := strings.Cut(strings.TrimSpace(raw), "=")
		name = strings.TrimSpace(name)
		if seen[name] {
			return p, false, fmt.Errorf("parameter %s given twice in %q", name, answer)
		}
		seen[name] = true
		switch name {
		case "client_no_context_takeover":
			p.clientNoContextTakeover = true
		case "server_no_context_takeover":
			p.serverNoContextTakeover = true
		case "server_max_window_bits", "client_max_window_bits":
			bits, err := strconv.Atoi(strings.Trim(strings.TrimSpace(value), `"`))
			if !hasValue || err != nil || bits < 8 || bits > 15 {
				return p, false, fmt.Errorf("bad %s in %q", name, answer)
			}
			if name == "server_max_window_bits" {
				p.serverMaxWindowBits = bits
			} else {
				if !strings.Contains(offer, "client_max_window_bits") {
					return p, false, fmt.Errorf("server sent client_max_window_bits that was not offered: %q", answer)
				}
				p.clientMaxWindowBits = bits
			}
		default:
			return p, false, fmt.Errorf("unknown permessage-deflate parameter %q in %q", name, answer)
		}
	}
	if p.clientMaxWindowBits != 0 && p.clientMaxWindowBits < 15 {
		// compress/flate cannot shrink its window: this client cannot
		// honour it, which is a limit of the client, not a server bug.
		return p, false, fmt.Errorf("client_max_window_bits=%d: the client cannot compress with a smaller window", p.clientMaxWindowBits)
	}
	return p, true, nil
}

// deflater compresses the client's messages.
type deflater struct {
	takeover bool
	buf      bytes.Buffer
	w        *flate.Writer
}

// compress returns p compressed as one permessage-deflate message: a
// sync flush with its 00 00 ff ff tail removed.
func (d *deflater) compress(p []byte) []byte {
	d.buf.Reset()
	if d.w == nil {
		d.w, _ = flate.NewWriter(&d.buf, flate.BestSpeed)
	} else if !d.takeover {
		d.w.Reset(&d.buf)
	}
	d.w.Write(p)
	d.w.Flush()
	out := bytes.TrimSuffix(d.buf.Bytes(), []byte(deflateTail))
	return bytes.Clone(out)
}

// inflater decompresses the server's messages. With context takeover the
// last 32 KiB of output is the dictionary of the next message.
type inflater struct {
	takeover bool
	window   []byte
}

func (in *inflater) inflate(p []byte, limit int) ([]byte, error) {
	src := io.MultiReader(bytes.NewReader(p), strings.NewReader(deflateTail))
	var r io.ReadCloser
	if in.takeover && len(in.window) > 0 {
		r = flate.NewReaderDict(src, in.window)
	} else {
		r = flate.NewReader(src)
	}
	out, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		// ErrUnexpectedEOF is the normal end: the message has no final
		// block, only the sync flush.
		return nil, fmt.Errorf("inflating a compressed message: %w", err)
	}
	if len(out) > limit {
		return nil, fmt.Errorf("compressed message inflates past %d bytes", limit)
	}
	if in.takeover {
		in.window = append(in.window, out...)
		if len(in.window) > windowSize {
			in.window = append([]byte(nil), in.window[len(in.window)-windowSize:]...)
		}
	}
	return out, nil
}
