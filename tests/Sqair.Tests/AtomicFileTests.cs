namespace Sqair.Tests;

public class AtomicFileTests
{
    [Fact]
    public void A_regular_file_is_replaced_whole_and_no_temporary_file_stays()
    {
        var dir = TestUtil.TempDir();
        var path = Path.Combine(dir, "out.json");
        File.WriteAllText(path, "old content, longer than the new");
        AtomicFile.WriteAllText(path, "new");
        Assert.Equal("new", File.ReadAllText(path));
        Assert.Equal([path], Directory.GetFiles(dir));
    }

    [Fact]
    public async Task A_FIFO_is_written_in_place_not_replaced_by_a_regular_file()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "special files are detected on Linux");
        var fifo = Path.Combine(TestUtil.TempDir(), "results.json");
        TestUtil.MakeFifo(fifo);
        Assert.True(SpecialFile.Is(fifo));
        var reader = Task.Run(() => File.ReadAllText(fifo), TestContext.Current.CancellationToken);
        AtomicFile.WriteAllText(fifo, "through the pipe");
        Assert.Equal("through the pipe", await reader.WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken));
        Assert.True(SpecialFile.Is(fifo), "the FIFO was replaced by a regular file");
        Assert.Single(Directory.GetFiles(Path.GetDirectoryName(fifo)!));
    }

    [Fact]
    public void Regular_files_folders_and_missing_paths_are_not_special()
    {
        var dir = TestUtil.TempDir();
        var file = Path.Combine(dir, "f");
        File.WriteAllText(file, "x");
        Assert.False(SpecialFile.Is(file));
        Assert.False(SpecialFile.Is(dir));
        Assert.False(SpecialFile.Is(Path.Combine(dir, "missing")));
        if (OperatingSystem.IsLinux()) Assert.True(SpecialFile.Is("/dev/null"));
    }
}
