package wsroute

import (
	"net/http"
	"strings"
)

// hdrExtensions is Sec-WebSocket-Extensions in canonical form.
const hdrExtensions = "Sec-Websocket-Extensions"

// declineBadDeflateOffers returns r, or, when r offers permessage-deflate
// in a form RFC 7692 (section 7) says a server MUST decline, a shallow
// copy of r whose Sec-WebSocket-Extensions lacks those offers. The
// client's other offers are kept, in order, so a valid fallback is still
// negotiated.
//
// coder/websocket v1.8.15 (accept.go, acceptDeflate) declines unknown
// parameters itself but accepts a parameter given twice and a
// client_max_window_bits of any value; handing it only the offers that
// may be accepted keeps its negotiation as it is for every valid offer.
// r itself is not changed: Conn.Request still shows what the client sent.
func declineBadDeflateOffers(r *http.Request, mode CompressionMode) *http.Request {
	if mode == CompressionDisabled {
		return r
	}
	vals := r.Header[hdrExtensions]
	bad := false
	for _, v := range vals {
		for ext := range strings.SplitSeq(v, ",") {
			if badDeflateOffer(ext) {
				bad = true
			}
		}
	}
	if !bad {
		return r
	}
	var kept []string
	for _, v := range vals {
		for ext := range strings.SplitSeq(v, ",") {
			if ext = strings.TrimSpace(ext); ext != "" && !badDeflateOffer(ext) {
				kept = append(kept, ext)
			}
		}
	}
	r2 := r.WithContext(r.Context())
	r2.Header = r.Header.Clone()
	if len(kept) == 0 {
		delete(r2.Header, hdrExtensions)
	} else {
		r2.Header[hdrExtensions] = []string{strings.Join(kept, ", ")}
	}
	return r2
}

// badDeflateOffer reports whether ext is a permessage-deflate offer that
// must be declined: a parameter given twice, a value where none is
// allowed, a missing or invalid window size (a decimal 8 to 15 without
// leading zeros, RFC 7692 sections 7.1.2.1 and 7.1.2.2), or a parameter
// the RFC does not define. Other extensions are not judged here.
func badDeflateOffer(ext string) bool {
	name, params, hasParams := strings.Cut(ext, ";")
	if !hasParams || !strings.EqualFold(strings.TrimSpace(name), "permessage-deflate") {
		return false
	}
	var seen uint8
	for p := range strings.SplitSeq(params, ";") {
		k, v, hasValue := strings.Cut(strings.TrimSpace(p), "=")
		k, v = strings.TrimSpace(k), strings.Trim(strings.TrimSpace(v), `"`)
		var bit uint8
		switch strings.ToLower(k) {
		case "server_no_context_takeover":
			bit = 1
		case "client_no_context_takeover":
			bit = 2
		case "server_max_window_bits":
			bit = 4
			if !hasValue || !validWindowBits(v) {
				return true
			}
		case "client_max_window_bits":
			bit = 8
			if hasValue && !validWindowBits(v) {
				return true
			}
		default:
			return true
		}
		if seen&bit != 0 || bit <= 2 && hasValue {
			return true
		}
		seen |= bit
	}
	return false
}

// validWindowBits reports whether v is 8, 9, 10, 11, 12, 13, 14 or 15.
func validWindowBits(v string) bool {
	switch v {
	case "8", "9", "10", "11", "12", "13", "14", "15":
		return true
	}
	return false
}
