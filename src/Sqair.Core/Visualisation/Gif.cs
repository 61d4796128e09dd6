using SkiaSharp;
using Sqair.Files;

namespace Sqair.Visualisation;

/// <summary>
/// A small animated-GIF encoder (SkiaSharp decodes GIF but cannot write it). Frames are quantised
/// to a fixed palette suited to our figures: 240 grey levels for images and text plus the box
/// colours of <see cref="Grid"/>; codes are LZW-compressed as GIF89a requires.
/// </summary>
internal static class Gif
{
    const int Greys = 240;
    static readonly SKColor[] Palette = BuildPalette();

    static SKColor[] BuildPalette()
    {
        var p = new SKColor[256];
        for (int i = 0; i < Greys; i++)
        {
            byte v = (byte)Math.Round(i * 255.0 / (Greys - 1));
            p[i] = new SKColor(v, v, v);
        }
        for (int i = 0; i < 10; i++) p[Greys + i] = Grid.ColorOf(i);
        for (int i = Greys + 10; i < 256; i++) p[i] = SKColors.Black;
        return p;
    }

    static byte Index(SKColor c)
    {
        int r = c.Red, g = c.Green, b = c.Blue;
        if (Math.Abs(r - g) < 16 && Math.Abs(g - b) < 16 && Math.Abs(r - b) < 16)
            return (byte)Math.Round((r + g + b) / 3.0 * (Greys - 1) / 255.0);
        int best = Greys, bestD = int.MaxValue;
        for (int i = Greys; i < Greys + 10; i++)
        {
            int dr = r - Palette[i].Red, dg = g - Palette[i].Green, db = b - Palette[i].Blue,
                d = dr * dr + dg * dg + db * db;
            if (d < bestD) { bestD = d; best = i; }
        }
        return (byte)best;
    }

    /// <summary>
    /// Writes the frames (all the size of the first) as a looping GIF, <paramref name="delayCs"/>
    /// hundredths of a second each.
    /// </summary>
    public static void Write(string path, IReadOnlyList<SKBitmap> frames, int delayCs = 20)
    {
        if (frames.Count == 0) throw new ArgumentException("no frames to write");
        int w = frames[0].Width, h = frames[0].Height;
        AtomicFile.Write(path, s =>
        {
            using var o = new BinaryWriter(s, System.Text.Encoding.ASCII, leaveOpen: true);
            o.Write("GIF89a"u8);
            o.Write((ushort)w); o.Write((ushort)h);
            o.Write((byte)0xF7); o.Write((byte)0); o.Write((byte)0);   // global 256-colour table
            foreach (var c in Palette) { o.Write(c.Red); o.Write(c.Green); o.Write(c.Blue); }
            // Application extension NETSCAPE2.0: loop forever. (Byte arrays, not u8 strings: \xFF would be
            // UTF-8 encoded.)
            o.Write(new byte[] { 0x21, 0xFF, 0x0B });
            o.Write("NETSCAPE2.0"u8);
            o.Write(new byte[] { 0x03, 0x01, 0x00, 0x00, 0x00 });
            foreach (var frame in frames)
            {
                o.Write(new byte[] { 0x21, 0xF9, 0x04, 0x00 });
                o.Write((ushort)delayCs); o.Write((byte)0); o.Write((byte)0);
                o.Write((byte)0x2C); o.Write((ushort)0); o.Write((ushort)0);
                o.Write((ushort)w); o.Write((ushort)h); o.Write((byte)0);
                var indices = new byte[w * h];
                for (int y = 0; y < h; y++)
                    for (int x = 0; x < w; x++)
                        indices[y * w + x] =
                            x < frame.Width && y < frame.Height ? Index(frame.GetPixel(x, y)) : (byte)0;
                Lzw(o, indices);
            }
            o.Write((byte)0x3B);
        });
    }

    /// <summary>
    /// LZW with 8-bit minimum code size, variable code width up to 12 bits, written in ≤255-byte sub-blocks.
    /// </summary>
    static void Lzw(BinaryWriter o, byte[] data)
    {
        const int minCode = 8, clear = 1 << minCode, end = clear + 1;
        o.Write((byte)minCode);
        var block = new List<byte>(255);
        int bitBuffer = 0, bitCount = 0, width = minCode + 1, next = end + 1;
        var table = new Dictionary<int, int>();
        void Emit(int code)
        {
            bitBuffer |= code << bitCount;
            bitCount += width;
            while (bitCount >= 8)
            {
                block.Add((byte)bitBuffer);
                bitBuffer >>= 8;
                bitCount -= 8;
                if (block.Count == 255) { o.Write((byte)255); o.Write(block.ToArray()); block.Clear(); }
            }
        }
        Emit(clear);
        int prefix = data[0];
        for (int i = 1; i < data.Length; i++)
        {
            int key = prefix << 8 | data[i];
            if (table.TryGetValue(key, out var code)) { prefix = code; continue; }
            Emit(prefix);
            if (next < 4096)
            {
                table[key] = next++;
                if (next > 1 << width && width < 12) width++;
            }
            else
            {
                Emit(clear);
                table.Clear();
                next = end + 1;
                width = minCode + 1;
            }
            prefix = data[i];
        }
        Emit(prefix);
        Emit(end);
        if (bitCount > 0) block.Add((byte)bitBuffer);
        if (block.Count > 0) { o.Write((byte)block.Count); o.Write(block.ToArray()); }
        o.Write((byte)0);
    }
}
