package hl7

import (
	"bytes"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"
)

// Canonical charset names, as Message.Charset reports them.
const (
	CharsetASCII       = "US-ASCII"
	CharsetUTF8        = "UTF-8"
	CharsetLatin1      = "ISO-8859-1"
	CharsetWindows1252 = "windows-1252"
)

// LookupCharset maps an MSH-18 value (table 0211) or one of the common
// non-standard spellings (reference §8.3: "UTF-8", "UTF8", "ISO-8859-1",
// "LATIN1", "CP1252", ...) to its canonical name. Case, spaces and the
// punctuation - _ / are ignored. ok is false for unknown or unsupported
// values (UTF-16, UTF-32, CNS 11643), which callers treat as absent.
func LookupCharset(name string) (canonical string, ok bool) {
	var kb [24]byte
	k := kb[:0]
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z':
			k = append(k, c-'a'+'A')
		case c >= 'A' && c <= 'Z' || c >= '0' && c <= '9':
			k = append(k, c)
		case c == ' ' || c == '-' || c == '_' || c == '/' || c == '\t':
		default:
			return "", false
		}
		if len(k) == cap(kb) {
			return "", false
		}
	}
	switch string(k) {
	case "ASCII", "USASCII", "ISOIR6":
		return CharsetASCII, true
	case "UNICODE", "UNICODEUTF8", "UTF8":
		return CharsetUTF8, true
	case "88591", "ISO88591", "LATIN1", "ISOIR100", "L1":
		return CharsetLatin1, true
	case "WINDOWS1252", "CP1252", "WIN1252":
		return CharsetWindows1252, true
	case "ISOIR87", "ISOIR159", "ISO2022JP":
		return "ISO-2022-JP", true
	case "ISOIR14", "SHIFTJIS", "SJIS":
		return "Shift_JIS", true
	case "GB180302000", "GB18030":
		return "GB18030", true
	case "KSX1001", "EUCKR":
		return "EUC-KR", true
	case "BIG5":
		return "Big5", true
	}
	// 8859/n, ISO-8859-n, ISO8859-n for the parts x/text has.
	digits := string(k)
	digits = strings.TrimPrefix(digits, "ISO")
	if rest, ok := strings.CutPrefix(digits, "8859"); ok {
		switch rest {
		case "2", "3", "4", "5", "6", "7", "8", "9", "10", "13", "14", "15", "16":
			return "ISO-8859-" + rest, true
		}
	}
	return "", false
}

// encodingOf returns the x/text encoding for a canonical name; nil for UTF-8
// and US-ASCII, which need no conversion.
func encodingOf(cs string) encoding.Encoding {
	switch cs {
	case CharsetLatin1:
		return charmap.ISO8859_1
	case CharsetWindows1252:
		return charmap.Windows1252
	case "ISO-8859-2":
		return charmap.ISO8859_2
	case "ISO-8859-3":
		return charmap.ISO8859_3
	case "ISO-8859-4":
		return charmap.ISO8859_4
	case "ISO-8859-5":
		return charmap.ISO8859_5
	case "ISO-8859-6":
		return charmap.ISO8859_6
	case "ISO-8859-7":
		return charmap.ISO8859_7
	case "ISO-8859-8":
		return charmap.ISO8859_8
	case "ISO-8859-9":
		return charmap.ISO8859_9
	case "ISO-8859-10":
		return charmap.ISO8859_10
	case "ISO-8859-13":
		return charmap.ISO8859_13
	case "ISO-8859-14":
		return charmap.ISO8859_14
	case "ISO-8859-15":
		return charmap.ISO8859_15
	case "ISO-8859-16":
		return charmap.ISO8859_16
	case "ISO-2022-JP":
		return japanese.ISO2022JP
	case "Shift_JIS":
		return japanese.ShiftJIS
	case "GB18030":
		return simplifiedchinese.GB18030
	case "EUC-KR":
		return korean.EUCKR
	case "Big5":
		return traditionalchinese.Big5
	}
	return nil
}

// decodeCharset converts v from charset cs to a UTF-8 string.
func decodeCharset(cs string, v []byte) string {
	enc := encodingOf(cs)
	if enc == nil || isASCII(v) && cs != "ISO-2022-JP" {
		if utf8.Valid(v) {
			return string(v)
		}
		return strings.ToValidUTF8(string(v), "\uFFFD")
	}
	out, err := enc.NewDecoder().Bytes(v)
	if err != nil {
		return strings.ToValidUTF8(string(v), "\uFFFD")
	}
	return string(out)
}

// encodeCharset converts UTF-8 text s to charset cs.
func encodeCharset(cs string, s string) ([]byte, error) {
	if cs == CharsetASCII {
		for i := 0; i < len(s); i++ {
			if s[i] >= utf8.RuneSelf {
				return nil, ErrUnrepresentable
			}
		}
		return []byte(s), nil
	}
	enc := encodingOf(cs)
	if enc == nil || isASCII([]byte(s)) {
		if !utf8.ValidString(s) {
			return nil, ErrUnrepresentable
		}
		return []byte(s), nil
	}
	out, err := enc.NewEncoder().Bytes([]byte(s))
	if err != nil {
		return nil, ErrUnrepresentable
	}
	return out, nil
}

// resolveCharset decides the decoding charset of a message (reference §8.3):
// the declared MSH-18 (any repetition naming ISO IR87/IR159 selects
// ISO-2022-JP, the code-extension case), else UTF-8 when the bytes are valid
// UTF-8, else the fallback. A declared ASCII with non-ASCII bytes is treated
// as undeclared.
func resolveCharset(msh18 []byte, rep byte, body []byte, fallback string) string {
	if len(msh18) > 0 {
		first := msh18
		if rep != 0 {
			if i := bytes.IndexByte(msh18, rep); i >= 0 {
				first = msh18[:i]
				for _, ext := range bytes.Split(msh18[i+1:], []byte{rep}) {
					if cs, ok := LookupCharset(string(ext)); ok && cs == "ISO-2022-JP" {
						return cs
					}
				}
			}
		}
		if cs, ok := LookupCharset(string(first)); ok {
			if cs != CharsetASCII || isASCII(body) {
				return cs
			}
		}
	}
	if utf8.Valid(body) {
		return CharsetUTF8
	}
	if cs, ok := LookupCharset(fallback); ok {
		return cs
	}
	return CharsetWindows1252
}

// IsStandardCharset reports whether v (an MSH-18 repetition, spaces around it
// ignored) is spelled as table 0211 spells it. A value that LookupCharset
// knows but that is not standard is an alias: reference §8.3 asks for a
// warning once per sender.
func IsStandardCharset(v string) bool {
	switch strings.TrimSpace(v) {
	case "ASCII", "8859/1", "8859/2", "8859/3", "8859/4", "8859/5", "8859/6", "8859/7", "8859/8", "8859/9", "8859/15",
		"ISO IR6", "ISO IR14", "ISO IR87", "ISO IR159", "GB 18030-2000", "KS X 1001", "CNS 11643-1992", "BIG-5",
		"UNICODE", "UNICODE UTF-8", "UNICODE UTF-16", "UNICODE UTF-32":
		return true
	}
	return false
}
