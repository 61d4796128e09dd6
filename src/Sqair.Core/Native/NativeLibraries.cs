using System.Runtime.InteropServices;

namespace Sqair.Native;

/// <summary>
/// Makes libtorch and Skia loadable in hosts without a deps.json that names them: .NET Interactive
/// notebooks and scripts that reference the built assemblies with <c>#r</c>. TorchSharp and
/// SkiaSharp find their native libraries through the host's dependency manifest; such hosts have
/// none, so the first call fails ("doesn't contain a reference to libtorch-cpu", "Unable to load
/// shared library 'libSkiaSharp'"). Each library is loaded by its full path from the build folder
/// and its assembly's imports are pointed at it. Apps built normally (the sqair command, tests,
/// examples) do not need this.
/// </summary>
public static class NativeLibraries
{
    /// <summary>The native libraries, by the managed assembly they sit beside.</summary>
    static readonly (Type Beside, string Name)[] Libraries =
    [
        (typeof(TorchSharp.torch), "LibTorchSharp"),
        (typeof(SkiaSharp.SKBitmap), "HarfBuzzSharp"),
        (typeof(SkiaSharp.SKBitmap), "SkiaSharp"),
    ];

    /// <summary>
    /// Loads the native libraries found in the build folder (runtimes/&lt;rid&gt;/native); returns the files loaded.
    /// </summary>
    public static IReadOnlyList<string> LoadFromBuildFolder()
    {
        var handles = new Dictionary<string, IntPtr>();
        var loaded = new List<string>();
        foreach (var (beside, name) in Libraries)
        {
            var dir = Path.GetDirectoryName(beside.Assembly.Location);
            if (string.IsNullOrEmpty(dir)) continue;
            var file = OperatingSystem.IsWindows() ? $"{name}.dll"
                : OperatingSystem.IsMacOS() ? $"lib{name}.dylib"
                : $"lib{name}.so";
            var found = new[]
            {
                Path.Combine(dir, "runtimes", RuntimeInformation.RuntimeIdentifier, "native", file),
                Path.Combine(dir, file),
            }.FirstOrDefault(File.Exists);
            if (found is null) continue;
            var handle = NativeLibrary.Load(found);
            handles[name] = handles["lib" + name] = handle;
            loaded.Add(found);
        }
        foreach (var assembly in Libraries.Select(l => l.Beside.Assembly).Distinct())
        {
            try { NativeLibrary.SetDllImportResolver(assembly, (name, _, _) => handles.GetValueOrDefault(name)); }
            catch (InvalidOperationException)
            {
                // the assembly set its own resolver, which finds the loaded library by name
            }
        }
        return loaded;
    }
}
