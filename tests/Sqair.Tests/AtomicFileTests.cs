using Sqair.Files;
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
        Assert.Equal("through the pipe",
                     await reader.WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken));
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

    [Fact]
    public void A_write_removes_what_killed_writers_left_in_its_folder_and_keeps_a_running_writers()
    {
        var dir = TestUtil.TempDir();
        using var gone = System.Diagnostics.Process.Start("true")!;
        gone.WaitForExit();
        var staleFile = Path.Combine(dir, $"model.safetensors.tmp-{gone.Id}-{Guid.NewGuid():N}");
        var staleFolder = Path.Combine(dir, $"tracks-mot.tmp-{gone.Id}-{Guid.NewGuid():N}");
        var running = Path.Combine(dir, $"eval.json.tmp-{Environment.ProcessId}-{Guid.NewGuid():N}");
        File.WriteAllText(staleFile, "half a checkpoint");
        Directory.CreateDirectory(staleFolder);
        File.WriteAllText(Path.Combine(staleFolder, "seq-000000.txt"), "1,1,1,1,1,1,1,-1,-1,-1");
        File.WriteAllText(running, "being written");
        AtomicFile.WriteAllText(Path.Combine(dir, "out.json"), "{}");
        Assert.False(File.Exists(staleFile));
        Assert.False(Directory.Exists(staleFolder));
        Assert.True(File.Exists(running));
    }

    [Fact]
    public void A_folder_is_replaced_whole_and_kept_when_writing_the_new_one_fails()
    {
        var dir = Path.Combine(TestUtil.TempDir(), "tracks-mot");
        AtomicFile.WriteFolder(dir, tmp =>
        {
            foreach (var n in new[] { "a", "b", "c" }) File.WriteAllText(Path.Combine(tmp, n + ".txt"), n);
        });
        AtomicFile.WriteFolder(dir, tmp => File.WriteAllText(Path.Combine(tmp, "a.txt"), "new"));
        Assert.Equal([Path.Combine(dir, "a.txt")], Directory.GetFiles(dir));
        Assert.Throws<IOException>(() => AtomicFile.WriteFolder(dir, tmp =>
        {
            File.WriteAllText(Path.Combine(tmp, "a.txt"), "partial");
            throw new IOException("disk full");
        }));
        Assert.Equal("new", File.ReadAllText(Path.Combine(dir, "a.txt")));
        Assert.Single(Directory.GetFileSystemEntries(Path.GetDirectoryName(dir)!));
    }

    [Fact]
    public void A_path_under_a_file_is_refused_naming_the_file()
    {
        var file = Path.Combine(TestUtil.TempDir(), "model.safetensors");
        File.WriteAllText(file, "x");
        var e = Assert.Throws<IOException>(() => AtomicFile.WriteAllText(Path.Combine(file, "sub", "eval.json"), "{}"));
        Assert.Equal($"cannot write {Path.Combine(file, "sub", "eval.json")}: {file} is a file, not a folder",
                     e.Message);
    }
}
