using System.Globalization;
using SkiaSharp;
using Sqair.Data;

namespace Sqair.Tests.Data;

public class FrameImportTests
{
    /// <summary>
    /// Writes each sequence of a generated dataset as a MOT Challenge folder: img1/000001.png… and
    /// gt/gt.txt with its visible boxes (1-based, conf 1), as a user's labelled clips would look.
    /// </summary>
    public static List<string> AsMotFolders(MovingMnist generator, int count, string root)
    {
        var c = generator.Config;
        int side = c.CanvasSize, plane = side * side;
        var folders = new List<string>();
        for (int i = 0; i < count; i++)
        {
            var s = generator.Generate(i);
            var dir = Path.Combine(root, $"seq{i:D2}");
            Directory.CreateDirectory(Path.Combine(dir, "img1"));
            Directory.CreateDirectory(Path.Combine(dir, "gt"));
            var gt = new List<string>();
            for (int t = 0; t < c.SeqLen; t++)
            {
                using var bmp = new SKBitmap(side, side);
                for (int y = 0; y < side; y++)
                    for (int x = 0; x < side; x++)
                    {
                        int o = t * c.Channels * plane + y * side + x;
                        bmp.SetPixel(x, y, c.Channels == 1
                            ? new SKColor(s.Frames[o], s.Frames[o], s.Frames[o])
                            : new SKColor(s.Frames[o], s.Frames[o + plane], s.Frames[o + 2 * plane]));
                    }
                using var png = bmp.Encode(SKEncodedImageFormat.Png, 100);
                File.WriteAllBytes(Path.Combine(dir, "img1", $"{t + 1:D6}.png"), png.ToArray());
                for (int k = 0; k < c.MaxDigits; k++)
                    if (s.Present[t * c.MaxDigits + k] == 1)
                    {
                        var b = s.Boxes.AsSpan((t * c.MaxDigits + k) * 4, 4);
                        gt.Add(string.Join(",",
                            new object[] { t + 1, s.Ids[k] + 1, b[1] + 1, b[0] + 1, b[3], b[2], 1, 1, 1 }
                                .Select(v => Convert.ToString(v, CultureInfo.InvariantCulture))));
                    }
            }
            File.WriteAllLines(Path.Combine(dir, "gt", "gt.txt"), gt);
            folders.Add(dir);
        }
        return folders;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void Frames_and_MOT_ground_truth_import_back_to_the_sequences_they_came_from(int channels)
    {
        var config = new MovingMnistConfig
        {
            CanvasSize = 32, SeqLen = 4, MinDigits = 1, MaxDigits = 2, Channels = channels
        };
        var generator = TestUtil.Generator(config);
        var root = TestUtil.TempDir();
        var folders = AsMotFolders(generator, 3, root);
        var path = Path.Combine(root, "imported.safetensors");
        var summary = FrameImport.Import(folders, path, new ImportOptions(32, channels, null),
                                         stop: TestContext.Current.CancellationToken);
        Assert.Equal((3L, true), (summary.Sequences, summary.HasTruth));

        using var file = SequenceFile.Open(path);
        Assert.True(file.HasTruth);
        Assert.Equal(channels, file.Config.Channels);
        for (int i = 0; i < 3; i++)
        {
            var (a, b) = (generator.Generate(i), file.Get(i));
            Assert.Equal(a.Frames, b.Frames);
            // slots follow first appearance; the generator's digits all appear in frame 0
            int n = a.Ids.Count(id => id >= 0);
            for (int t = 0; t < config.SeqLen; t++)
                for (int k = 0; k < n; k++)
                {
                    Assert.Equal(a.Present[t * 2 + k], b.Present[t * file.Config.MaxDigits + k]);
                    Assert.Equal(a.Boxes.AsSpan((t * 2 + k) * 4, 4).ToArray(),
                                 b.Boxes.AsSpan((t * file.Config.MaxDigits + k) * 4, 4).ToArray());
                }
            Assert.Equal(a.Ids.Where(id => id >= 0).Select(id => id + 1), b.Ids.Where(id => id >= 0));
        }
    }

    [Fact]
    public void Frames_without_ground_truth_import_as_windows_and_say_so()
    {
        var root = TestUtil.TempDir();
        var folders = AsMotFolders(TestUtil.Generator(new MovingMnistConfig { CanvasSize = 32, SeqLen = 7 }), 2, root);
        foreach (var f in folders) Directory.Delete(Path.Combine(f, "gt"), recursive: true);
        var path = Path.Combine(root, "windows.safetensors");
        var summary = FrameImport.Import(folders, path, new ImportOptions(16, 1, 3, ResizeFilter.Nearest),
                                         stop: TestContext.Current.CancellationToken);
        Assert.Equal((4L, false, 2), (summary.Sequences, summary.HasTruth, summary.DroppedFrames));
        using var file = SequenceFile.Open(path);
        Assert.False(file.HasTruth);
        Assert.Equal((16, 3, 0), (file.Config.CanvasSize, file.Config.SeqLen, file.Config.MaxDigits));
    }

    [Fact]
    public void Bad_folders_and_ground_truth_are_named()
    {
        var root = TestUtil.TempDir();
        var output = Path.Combine(root, "x.safetensors");
        var empty = Directory.CreateDirectory(Path.Combine(root, "empty")).FullName;
        var e1 = Assert.Throws<FileNotFoundException>(() =>
            FrameImport.Import([empty], output, new ImportOptions(32, 1, null),
                               stop: TestContext.Current.CancellationToken));
        Assert.Contains(empty, e1.Message);

        var folders = AsMotFolders(TestUtil.Generator(new MovingMnistConfig { CanvasSize = 32, SeqLen = 3 }), 2, root);
        using (var big = new SKBitmap(40, 40))
        using (var png = big.Encode(SKEncodedImageFormat.Png, 100))
            File.WriteAllBytes(Path.Combine(folders[0], "img1", "000002.png"), png.ToArray());
        var e2 = Assert.Throws<InvalidDataException>(() =>
            FrameImport.Import([folders[0]], output, new ImportOptions(32, 1, null),
                               stop: TestContext.Current.CancellationToken));
        Assert.Contains("000002.png: 40×40 pixels", e2.Message);

        var gt = Path.Combine(folders[1], FrameImport.TruthFile);
        File.AppendAllText(gt, "9,1,1,1,5,5,1,1,1\n");
        var e3 = Assert.Throws<InvalidDataException>(() =>
            FrameImport.Import([folders[1]], output, new ImportOptions(32, 1, null),
                               stop: TestContext.Current.CancellationToken));
        Assert.Contains($"{gt}:", e3.Message);
        Assert.Contains("frame 9 is outside the folder's frames 1..3", e3.Message);
        Assert.False(File.Exists(output));
    }

    /// <summary>The error of importing <paramref name="folder"/> with its ground truth.</summary>
    static InvalidDataException ImportError(string folder) => Assert.Throws<InvalidDataException>(() =>
        FrameImport.Import([folder], Path.Combine(Path.GetDirectoryName(folder)!, "x.safetensors"),
                           new ImportOptions(32, 1, null), stop: TestContext.Current.CancellationToken));

    [Fact]
    public void Ground_truth_frames_are_matched_by_number_so_a_missing_or_offset_image_is_named()
    {
        var root = TestUtil.TempDir();
        var folders = AsMotFolders(TestUtil.Generator(new MovingMnistConfig { CanvasSize = 32, SeqLen = 4 }), 3, root);
        File.Delete(Path.Combine(folders[0], "img1", "000002.png"));
        var gap = ImportError(folders[0]);
        Assert.Contains("000003.png: numbered 3 but frame 2 in name order", gap.Message);
        Assert.Contains("(no frame 2)", gap.Message);

        foreach (var file in Directory.GetFiles(Path.Combine(folders[1], "img1")).OrderDescending())
            File.Move(file, Path.Combine(Path.GetDirectoryName(file)!,
                $"{int.Parse(Path.GetFileNameWithoutExtension(file), CultureInfo.InvariantCulture) + 100:D6}.png"));
        Assert.Contains("000101.png: numbered 101 but frame 1", ImportError(folders[1]).Message);

        File.Move(Path.Combine(folders[2], "img1", "000004.png"), Path.Combine(folders[2], "img1", "last.png"));
        Assert.Contains("last.png: with gt/gt.txt, frames are matched to ground truth by number",
                        ImportError(folders[2]).Message);
    }

    [Theory]
    [InlineData("1.9,1,1,1,5,5,1,1,1", "frame '1.9' is not a whole number")]
    [InlineData("1,1.5,1,1,5,5,1,1,1", "id '1.5' is not a whole number")]
    [InlineData("1,3000000000,1,1,5,5,1,1,1", "id '3000000000' is not a whole number in 0..2147483647")]
    [InlineData("1,-1,1,1,5,5,1,1,1", "id '-1' is not a whole number")]
    [InlineData("1,1,1,1,1e39,5,1,1,1", "field 5 '1e39' is not a number")]
    public void Ground_truth_values_that_would_be_cut_or_overflow_are_errors_naming_the_line(string line, string words)
    {
        var folder = AsMotFolders(TestUtil.Generator(new MovingMnistConfig { CanvasSize = 32, SeqLen = 3 }), 1,
                                  TestUtil.TempDir())[0];
        var gt = Path.Combine(folder, FrameImport.TruthFile);
        int lines = File.ReadAllLines(gt).Length;
        File.AppendAllText(gt, line + "\n");
        var e = ImportError(folder);
        Assert.Contains($"{gt}:{lines + 1}: {words}", e.Message);
    }

    [Fact]
    public void A_FIFO_among_the_frames_is_refused_instead_of_read()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "FIFOs are detected on Linux");
        var folder = AsMotFolders(TestUtil.Generator(new MovingMnistConfig { CanvasSize = 32, SeqLen = 3 }), 1,
                                  TestUtil.TempDir())[0];
        var fifo = Path.Combine(folder, "img1", "000010.png");
        TestUtil.MakeFifo(fifo);
        var e = Assert.Throws<InvalidDataException>(() => FrameFolder.Files(folder));
        Assert.Contains($"{fifo}: not a regular file", e.Message);
    }
}
