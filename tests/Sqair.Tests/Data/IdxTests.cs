using Sqair.Data;

namespace Sqair.Tests.Data;

public class IdxTests
{
    static (int[] Shape, byte[] Data) Sample()
    {
        var data = new byte[3 * 4 * 5];
        for (int i = 0; i < data.Length; i++) data[i] = (byte)(i * 7);
        return ([3, 4, 5], data);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Round_trip_raw_and_gzip(bool gzip)
    {
        var dir = TestUtil.TempDir();
        var (shape, data) = Sample();
        var path = Path.Combine(dir, "x-idx3-ubyte");
        Idx.Write(path, shape, data, gzip);
        var read = Idx.Read(path);
        Assert.Equal(shape, read.Shape);
        Assert.Equal(data, read.Data);
    }

    static string WriteBytes(byte[] bytes)
    {
        var path = Path.Combine(TestUtil.TempDir(), "bad-idx");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    static byte[] Valid()
    {
        var dir = TestUtil.TempDir();
        var (shape, data) = Sample();
        var path = Path.Combine(dir, "v");
        Idx.Write(path, shape, data);
        return File.ReadAllBytes(path);
    }

    [Fact]
    public void Truncated_data_names_the_file_and_the_sizes()
    {
        var b = Valid();
        var path = WriteBytes(b[..^7]);
        var e = Assert.Throws<InvalidDataException>(() => Idx.Read(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("truncated", e.Message);
        Assert.Contains("60", e.Message);
    }

    [Fact]
    public void Truncated_header_is_an_error()
    {
        var path = WriteBytes(Valid()[..9]);
        var e = Assert.Throws<InvalidDataException>(() => Idx.Read(path));
        Assert.Contains("truncated IDX header", e.Message);
    }

    [Fact]
    public void Bad_magic_is_an_error()
    {
        var b = Valid();
        b[0] = 0x12;
        var e = Assert.Throws<InvalidDataException>(() => Idx.Read(WriteBytes(b)));
        Assert.Contains("magic", e.Message);
    }

    [Fact]
    public void Wrong_element_type_is_an_error()
    {
        var b = Valid();
        b[2] = 0x0D; // float
        var e = Assert.Throws<InvalidDataException>(() => Idx.Read(WriteBytes(b)));
        Assert.Contains("unsigned byte", e.Message);
    }

    [Fact]
    public void Trailing_bytes_are_an_error()
    {
        var b = Valid().Concat(new byte[] { 1, 2 }).ToArray();
        var e = Assert.Throws<InvalidDataException>(() => Idx.Read(WriteBytes(b)));
        Assert.Contains("2 unexpected bytes", e.Message);
    }

    [Fact]
    public void Zero_dimension_is_an_error()
    {
        var b = Valid();
        b[4] = b[5] = b[6] = b[7] = 0;
        var e = Assert.Throws<InvalidDataException>(() => Idx.Read(WriteBytes(b)));
        Assert.Contains("dimension 0 is 0", e.Message);
    }

    [Fact]
    public void Corrupt_gzip_names_the_file()
    {
        var dir = TestUtil.TempDir();
        var (shape, data) = Sample();
        var path = Path.Combine(dir, "x.gz");
        Idx.Write(path, shape, data, gzip: true);
        var b = File.ReadAllBytes(path);
        for (int i = 12; i < b.Length - 8; i++) b[i] ^= 0x5a;
        File.WriteAllBytes(path, b);
        var e = Assert.Throws<InvalidDataException>(() => Idx.Read(path));
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void Mnist_split_checks_label_count_against_images()
    {
        var dir = TestUtil.TempDir();
        Idx.Write(Path.Combine(dir, "i"), [2, 28, 28], new byte[2 * 28 * 28]);
        Idx.Write(Path.Combine(dir, "l"), [3], [1, 2, 3]);
        var e = Assert.Throws<InvalidDataException>(() =>
            MnistSplit.Load(Path.Combine(dir, "i"), Path.Combine(dir, "l")));
        Assert.Contains("3 labels for 2 images", e.Message);
    }
}
