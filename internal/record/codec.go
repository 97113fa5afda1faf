package record

// Codec is a batch compression codec, as in attribute bits 0-2.
type Codec int8

// The codecs Kafka defines.
const (
	CodecNone   Codec = 0
	CodecGzip   Codec = 1
	CodecSnappy Codec = 2
	CodecLZ4    Codec = 3
	CodecZstd   Codec = 4
)

var codecNames = [...]string{"none", "gzip", "snappy", "lz4", "zstd"}

func (c Codec) String() string {
	if c >= 0 && int(c) < len(codecNames) {
		return codecNames[c]
	}
	return "unknown"
}

// ParseCodec maps a compression.type value (without "producer") to a codec.
func ParseCodec(s string) (Codec, bool) {
	for i, n := range codecNames {
		if n == s {
			return Codec(i), true
		}
	}
	if s == "uncompressed" {
		return CodecNone, true
	}
	return 0, false
}
