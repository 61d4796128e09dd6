using Sqair.Data;

namespace Sqair.Tests.Data;

public class MnistTests
{
    [Fact]
    public void A_user_folder_with_wrong_files_is_rejected_by_md5_and_the_cache_gets_nothing()
    {
        var src = TestUtil.TempDir();
        var cache = TestUtil.TempDir();
        foreach (var f in Mnist.Files) Idx.Write(Path.Combine(src, f.Name + ".gz"), [4], [1, 2, 3, 4], gzip: true);
        var e = Assert.ThrowsAny<IOException>(() => Mnist.Ensure(cache, src));
        Assert.Contains("MD5", e.Message);
        Assert.Contains(src, e.Message);
        Assert.Empty(Directory.GetFiles(Path.Combine(cache, "mnist")));
    }

    [Fact]
    public void A_missing_user_folder_is_named()
    {
        var e = Assert.Throws<DirectoryNotFoundException>(() => Mnist.Ensure(TestUtil.TempDir(), "/nonexistent/mnist"));
        Assert.Contains("/nonexistent/mnist", e.Message);
    }

    [Fact]
    public void Md5_of_known_bytes()
    {
        Assert.Equal("900150983cd24fb0d6963f7d28e17f72", Mnist.Md5Of("abc"u8.ToArray()));
    }
}
