package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// MaxDecompressedSize bounds what one batch may decompress to. A batch whose
// records inflate past it is refused with an error wrapping ErrInvalid, so a
// compression bomb cannot exhaust the broker's memory.
const MaxDecompressedSize = 256 << 20

// ErrTooLarge is wrapped (together with ErrInvalid) by decompression errors
// when the output would exceed MaxDecompressedSize.
var ErrTooLarge = errors.New("record: decompressed batch too large")

// The encoder and decoder pools. Building a gzip, lz4 or zstd codec costs
// allocations of tens to hundreds of KiB, so they are reused; the pools are
// the only package-level state and are safe for concurrent use.
var (
	gzipWriters = sync.Pool{New: func() any {
		w := new(gzipWriter)
		w.w, _ = gzip.NewWriterLevel(&w.out, gzip.DefaultCompression)
		return w
	}}
	gzipReaders = sync.Pool{New: func() any { return new(gzipReader) }}
	lz4Writers  = sync.Pool{New: func() any {
		w := new(lz4Writer)
		w.w = lz4.NewWriter(&w.out)
		// 64 KiB independent blocks without a content checksum, as the
		// Java producer writes them: small buffers, readable everywhere.
		_ = w.w.Apply(lz4.BlockSizeOption(lz4.Block64Kb), lz4.ChecksumOption(false))
		return w
	}}
	lz4Readers = sync.Pool{New: func() any {
		r := new(lz4Reader)
		r.r = lz4.NewReader(&r.src)
		return r
	}}
	zstdEncoders = sync.Pool{New: func() any {
		enc, err := zstd.NewWriter(nil,
			zstd.WithEncoderConcurrency(1),
			zstd.WithZeroFrames(true),
			zstd.WithWindowSize(1<<20),
		)
		if err != nil {
			panic(fmt.Sprintf("record: zstd encoder options: %v", err)) // static options; cannot fail
		}
		h := &zstdEnc{enc: enc}
		runtime.AddCleanup(h, func(e *zstd.Encoder) { e.Close() }, enc)
		return h
	}}
	zstdDecoders = sync.Pool{New: func() any {
		dec, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxMemory(MaxDecompressedSize),
		)
		if err != nil {
			panic(fmt.Sprintf("record: zstd decoder options: %v", err)) // static options; cannot fail
		}
		h := &zstdDec{dec: dec}
		runtime.AddCleanup(h, func(d *zstd.Decoder) { d.Close() }, dec)
		return h
	}}
)

// appendWriter is an io.Writer appending to a byte slice.
type appendWriter struct{ b []byte }

func (a *appendWriter) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

type gzipWriter struct {
	w   *gzip.Writer
	out appendWriter
}

type gzipReader struct {
	r   gzip.Reader
	src bytes.Reader
}

type lz4Writer struct {
	w   *lz4.Writer
	out appendWriter
}

type lz4Reader struct {
	r   *lz4.Reader
	src bytes.Reader
}

// zstdEnc and zstdDec wrap the pooled zstd codecs so a cleanup can close them
// when the pool drops them.
type zstdEnc struct{ enc *zstd.Encoder }
type zstdDec struct {
	dec *zstd.Decoder
	src bytes.Reader
}

// Compress appends src compressed with codec c to dst. CodecNone appends src
// unchanged. Snappy is written as a raw snappy block (as librdkafka and
// franz-go write it); lz4 as an LZ4 frame.
func Compress(dst []byte, c Codec, src []byte) ([]byte, error) {
	switch c {
	case CodecNone:
		return append(dst, src...), nil
	case CodecGzip:
		gw := gzipWriters.Get().(*gzipWriter)
		defer gzipWriters.Put(gw)
		gw.out.b = dst
		gw.w.Reset(&gw.out)
		_, err := gw.w.Write(src)
		if err == nil {
			err = gw.w.Close()
		}
		out := gw.out.b
		gw.out.b = nil
		if err != nil {
			return dst, fmt.Errorf("record: gzip compress: %w", err)
		}
		return out, nil
	case CodecSnappy:
		n := s2.MaxEncodedLen(len(src))
		if n < 0 {
			return dst, fmt.Errorf("%w: %d bytes too large for snappy", ErrInvalid, len(src))
		}
		dst = slices.Grow(dst, n)
		enc := s2.EncodeSnappy(dst[len(dst):cap(dst)], src)
		return dst[:len(dst)+len(enc)], nil
	case CodecLZ4:
		lw := lz4Writers.Get().(*lz4Writer)
		defer lz4Writers.Put(lw)
		lw.out.b = dst
		lw.w.Reset(&lw.out)
		_, err := lw.w.Write(src)
		if err == nil {
			err = lw.w.Close()
		}
		out := lw.out.b
		lw.out.b = nil
		if err != nil {
			return dst, fmt.Errorf("record: lz4 compress: %w", err)
		}
		return out, nil
	case CodecZstd:
		ze := zstdEncoders.Get().(*zstdEnc)
		defer zstdEncoders.Put(ze)
		return ze.enc.EncodeAll(src, dst), nil
	default:
		return dst, fmt.Errorf("%w: unknown compression codec %d", ErrInvalid, c)
	}
}

// Decompress appends src decompressed with codec c to dst. It accepts both
// snappy framings Kafka clients use: a raw snappy block and the xerial
// framing of the Java client. Output beyond MaxDecompressedSize is refused
// with an error wrapping ErrInvalid and ErrTooLarge; malformed input gives an
// error wrapping ErrCorrupt. On error the returned slice is dst, unchanged in
// length.
func Decompress(dst []byte, c Codec, src []byte) ([]byte, error) {
	return decompress(dst, c, src, MaxDecompressedSize)
}

// decompress is Decompress with an output bound of max bytes (at most
// MaxDecompressedSize, which zstd enforces while decoding).
func decompress(dst []byte, c Codec, src []byte, max int) ([]byte, error) {
	var (
		out []byte
		err error
	)
	switch c {
	case CodecNone:
		if len(src) > max {
			return dst, tooLarge(c, max)
		}
		return append(dst, src...), nil
	case CodecGzip:
		gr := gzipReaders.Get().(*gzipReader)
		gr.src.Reset(src)
		if err = gr.r.Reset(&gr.src); err == nil {
			out, err = readBounded(dst, &gr.r, max, len(src))
		}
		gr.src.Reset(nil)
		gzipReaders.Put(gr)
	case CodecSnappy:
		out, err = decodeSnappy(dst, src, max)
	case CodecLZ4:
		lr := lz4Readers.Get().(*lz4Reader)
		lr.src.Reset(src)
		lr.r.Reset(&lr.src)
		out, err = readBounded(dst, lr.r, max, len(src))
		lr.src.Reset(nil)
		lz4Readers.Put(lr)
	case CodecZstd:
		zd := zstdDecoders.Get().(*zstdDec)
		out, err = decodeZstd(zd, dst, src, max)
		zstdDecoders.Put(zd)
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
			err = tooLarge(c, max)
		} else if err == nil && len(out)-len(dst) > max {
			err = tooLarge(c, max)
		}
	default:
		return dst, fmt.Errorf("%w: unknown compression codec %d", ErrInvalid, c)
	}
	if err != nil {
		if errors.Is(err, ErrInvalid) {
			return dst, err
		}
		return dst, fmt.Errorf("%w: %s decompress: %w", ErrCorrupt, c, err)
	}
	return out, nil
}

func tooLarge(c Codec, max int) error {
	return fmt.Errorf("%w: %w: %s batch inflates past %d bytes", ErrInvalid, ErrTooLarge, c, max)
}

// decodeZstd decodes src onto dst, refusing more than max bytes, without
// trusting the sizes frames declare: DecodeAll allocates a frame's
// declared content size before decoding it, so 9 bytes claiming 256 MiB
// made the broker allocate 256 MiB (FuzzDecompress found it through its
// CPU budget). The frames are walked first by their block headers
// (zstdBounds): raw and RLE blocks give their output exactly, a compressed
// block at most 128 KiB, so a frame declaring more than its blocks can
// make is corrupt, output that must exceed max is refused before decoding,
// and DecodeAll runs only when its output cannot exceed max; otherwise the
// input is streamed and stopped at max.
func decodeZstd(zd *zstdDec, dst, src []byte, max int) ([]byte, error) {
	least, most, err := zstdBounds(src, max)
	if err != nil {
		return dst, err
	}
	if least > uint64(max) {
		return dst, zstd.ErrDecoderSizeExceeded
	}
	if most <= uint64(max) {
		return zd.dec.DecodeAll(src, dst)
	}
	zd.src.Reset(src)
	defer zd.src.Reset(nil)
	if err := zd.dec.Reset(&zd.src); err != nil {
		return dst, err
	}
	return readBoundedGuess(dst, zd.dec, max, 4*len(src))
}

// zstdMaxBlock is the most a zstd block decodes to (RFC 8878 3.1.1.2.3).
const zstdMaxBlock = 128 << 10

var errZstdFrame = errors.New("malformed zstd frame")

// zstdBounds walks the frames of src by their headers and block headers,
// without decoding, and returns the least and the most output they can
// make. A frame declaring more than max is too large
// (zstd.ErrDecoderSizeExceeded).
func zstdBounds(src []byte, max int) (least, most uint64, err error) {
	for len(src) > 0 {
		var h zstd.Header
		if err := h.Decode(src); err != nil {
			return 0, 0, fmt.Errorf("%w: %w", errZstdFrame, err)
		}
		if h.Skippable {
			n := uint64(h.HeaderSize) + uint64(h.SkippableSize)
			if n > uint64(len(src)) {
				return 0, 0, errZstdFrame
			}
			src = src[n:]
			continue
		}
		if h.HasFCS && h.FrameContentSize > uint64(max) {
			return 0, 0, zstd.ErrDecoderSizeExceeded
		}
		src = src[h.HeaderSize:]
		var frameLeast, frameMost uint64
		for last := false; !last; {
			if len(src) < 3 {
				return 0, 0, errZstdFrame
			}
			bh := uint32(src[0]) | uint32(src[1])<<8 | uint32(src[2])<<16
			typ, size := (bh>>1)&3, int(bh>>3)
			last = bh&1 == 1
			src = src[3:]
			in := size
			switch typ {
			case 0: // raw
				frameLeast += uint64(size)
				frameMost += uint64(size)
			case 1: // RLE: one byte, size times
				in = 1
				frameLeast += uint64(size)
				frameMost += uint64(size)
			case 2:
				frameMost += zstdMaxBlock
			default:
				return 0, 0, fmt.Errorf("%w: reserved block type", errZstdFrame)
			}
			if in > len(src) {
				return 0, 0, errZstdFrame
			}
			src = src[in:]
		}
		if h.HasFCS && (h.FrameContentSize > frameMost || h.FrameContentSize < frameLeast) {
			return 0, 0, fmt.Errorf("%w: declares %d bytes, its blocks make %d to %d", errZstdFrame, h.FrameContentSize, frameLeast, frameMost)
		}
		if h.HasCheckSum {
			if len(src) < 4 {
				return 0, 0, errZstdFrame
			}
			src = src[4:]
		}
		least, most = least+frameLeast, most+frameMost
	}
	return least, most, nil
}

// snappyMaxRatio bounds what a snappy block can expand to: its densest
// element is a 64-byte copy in 3 bytes. A block declaring more is corrupt
// and refused before anything is allocated for it.
const snappyMaxRatio = 22

// readBounded appends everything r yields to dst, refusing more than max
// bytes.
func readBounded(dst []byte, r io.Reader, max, srcLen int) ([]byte, error) {
	// Guess a 4x ratio to start, within the bound.
	return readBoundedGuess(dst, r, max, 4*srcLen)
}

// readBoundedGuess is readBounded growing dst by guess bytes (at most
// max) to start.
func readBoundedGuess(dst []byte, r io.Reader, max, guess int) ([]byte, error) {
	start := len(dst)
	dst = slices.Grow(dst, min(max, guess)+512)
	for {
		if len(dst) == cap(dst) {
			// Double what we have, but never past max+1 bytes of
			// output (plus slack): one byte over is enough to know.
			dst = slices.Grow(dst, min(cap(dst)-start, max+1-(len(dst)-start))+512)
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if len(dst)-start > max {
			return dst[:start], tooLargeCodecless(max)
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst[:start], err
		}
	}
}

func tooLargeCodecless(max int) error {
	return fmt.Errorf("%w: %w: batch inflates past %d bytes", ErrInvalid, ErrTooLarge, max)
}

// xerialMagic starts the xerial snappy framing the Java client writes: the
// magic, then a version and a minimum compatible version (int32 each), then
// blocks, each a big-endian int32 length and a raw snappy block.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

const xerialHeaderSize = 16

func decodeSnappy(dst, src []byte, max int) ([]byte, error) {
	if len(src) >= xerialHeaderSize && bytes.HasPrefix(src, xerialMagic) {
		return decodeXerial(dst, src[xerialHeaderSize:], max)
	}
	return decodeSnappyBlock(dst, src, max)
}

// decodeSnappyBlock appends one raw snappy block to dst. The decoded length is
// declared up front, so it is bounded before anything is allocated.
// snappyDecodedLen is the decoded length a snappy block declares: over
// max, the batch is too large; more than the block could expand to, it is
// corrupt (refused before anything is allocated for it).
func snappyDecodedLen(block []byte, max int) (int, error) {
	n, err := s2.DecodedLen(block)
	if err != nil {
		return 0, err
	}
	if n > max {
		return 0, tooLarge(CodecSnappy, max)
	}
	if n > snappyMaxRatio*len(block) {
		return 0, fmt.Errorf("snappy block of %d bytes declares %d decoded bytes, more than snappy can encode", len(block), n)
	}
	return n, nil
}

func decodeSnappyBlock(dst, block []byte, max int) ([]byte, error) {
	n, err := snappyDecodedLen(block, max)
	if err != nil {
		return dst, err
	}
	dst = slices.Grow(dst, n)
	if _, err := s2.Decode(dst[len(dst):len(dst)+n], block); err != nil {
		return dst, err
	}
	return dst[:len(dst)+n], nil
}

var errXerial = errors.New("malformed xerial snappy framing")

func decodeXerial(dst, src []byte, max int) ([]byte, error) {
	// First pass: check the framing and bound the total, so dst grows once.
	total := 0
	for rem := src; len(rem) > 0; {
		if len(rem) < 4 {
			return dst, errXerial
		}
		size := binary.BigEndian.Uint32(rem)
		rem = rem[4:]
		if uint64(size) > uint64(len(rem)) {
			return dst, errXerial
		}
		n, err := snappyDecodedLen(rem[:size], max)
		if err != nil {
			return dst, err
		}
		total += n
		if total > max {
			return dst, tooLarge(CodecSnappy, max)
		}
		rem = rem[size:]
	}
	start := len(dst)
	dst = slices.Grow(dst, total)
	for len(src) > 0 {
		size := binary.BigEndian.Uint32(src)
		src = src[4:]
		var err error
		if dst, err = decodeSnappyBlock(dst, src[:size], max); err != nil {
			return dst[:start], err
		}
		src = src[size:]
	}
	return dst, nil
}
