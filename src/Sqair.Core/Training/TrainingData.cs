using Sqair.Data;
using Sqair.Model;

namespace Sqair.Training;

/// <summary>
/// The sequences a run trains and validates on, chosen from its config: the dataset files it names
/// (<c>data</c>, <c>valid_data</c>), else the cached standard sets (generated once), else the
/// on-the-fly generator. Every file is checked against its checksums before training, and a new
/// run records its files by full path with the training frames' checksum; a resumed run must find
/// the same frames there.
/// </summary>
public sealed class TrainingData : IDisposable
{
    /// <summary>The training sequences.</summary>
    public ISequenceSource Train { get; }
    /// <summary>
    /// The validation sequences (the training file itself when a file is given without <c>valid_data</c>).
    /// </summary>
    public ISequenceSource Valid { get; }
    /// <summary>
    /// The run's config with its data provenance recorded (full paths, the training frames' checksum).
    /// </summary>
    public SqairConfig Config { get; }

    TrainingData(ISequenceSource train, ISequenceSource valid, SqairConfig config) =>
        (Train, Valid, Config) = (train, valid, config);

    /// <summary>
    /// Opens the data of <paramref name="config"/>: its files, else the standard datasets of
    /// <paramref name="cache"/> (generated once), else MNIST from it for the on-the-fly generator. A missing file is
    /// a <see cref="FileNotFoundException"/>, a contradiction in the config an <see cref="ArgumentException"/>,
    /// damaged bytes an <see cref="InvalidDataException"/>.
    /// </summary>
    public static TrainingData Open(SqairConfig config, StartMode mode, DataCache cache, Action<string>? log = null,
                                    Action<string>? warn = null)
    {
        var dataConfig = config.DataConfig();
        if (config.Data is { } data)
        {
            var train = OpenChecked(data, "data", log, warn);
            try
            {
                var valid = config.ValidData is { } v ? OpenChecked(v, "valid_data", log, warn) : train;
                return new TrainingData(train, valid, WithProvenance(config, train, valid, mode, warn));
            }
            catch
            {
                train.Dispose();
                throw;
            }
        }
        // a checksum checks a data file: without one it would be silently ignored
        foreach (var (key, value) in new[] { ("data_checksum", config.DataChecksum),
                                             ("valid_data_checksum", config.ValidDataChecksum) })
            if (value is not null)
                throw new ArgumentException($"config key '{key}' needs 'data' (it is the checksum of that file's " +
                                            "frames; the generated datasets are checked by their own)");
        if (config.ValidData is not null)
            throw new ArgumentException("config key 'valid_data' needs 'data' " +
                                        "(the generated training set comes with its own validation set)");
        ISequenceSource trainSource = config.OnTheFly
            ? new GeneratedSource(Datasets.Generator(cache.Mnist(), dataConfig, Pool.Train, config.DataSeed))
            : cache.Dataset(dataConfig, Pool.Train, config.TrainSize, config.DataSeed).Checked(log, warn);
        return new TrainingData(
            trainSource,
            cache.Dataset(dataConfig, Pool.Validation, config.ValidSize, config.DataSeed).Checked(log, warn),
            config);
    }

    /// <summary>Closes the files (the validation file once, when it is the training file).</summary>
    public void Dispose()
    {
        (Train as IDisposable)?.Dispose();
        if (!ReferenceEquals(Valid, Train)) (Valid as IDisposable)?.Dispose();
    }

    static SequenceFile OpenChecked(string path, string key, Action<string>? log, Action<string>? warn) =>
        File.Exists(path)
            ? SequenceFile.Open(path).Checked(log, warn)
            : throw new FileNotFoundException($"config key '{key}' = {path}: no such file", path);

    /// <summary>
    /// A new run records its data files by full path and their frames' checksums; a resumed run must
    /// find the same training frames there, and is warned when the validation frames changed.
    /// </summary>
    static SqairConfig WithProvenance(SqairConfig config, SequenceFile train, SequenceFile valid, StartMode mode,
                                      Action<string>? warn)
    {
        var checksum = train.Checksum("frames");
        var validChecksum = config.ValidData is null ? null : valid.Checksum("frames");
        if (mode == StartMode.Resume)
        {
            if (config.DataChecksum is not null && checksum != config.DataChecksum)
                throw new ArgumentException(
                    $"config key 'data' = {config.Data}: its frames changed since the run started " +
                    $"(checksum {checksum}, the run's {config.DataChecksum})");
            if (config.ValidDataChecksum is not null && validChecksum != config.ValidDataChecksum)
                warn?.Invoke($"config key 'valid_data' = {config.ValidData}: its frames changed since the run " +
                             $"started (checksum {validChecksum}, the run's {config.ValidDataChecksum}); " +
                             "validation measures from now on do not compare with the earlier ones");
            return config;
        }
        return config with
        {
            Data = Path.GetFullPath(config.Data!),
            ValidData = config.ValidData is null ? null : Path.GetFullPath(config.ValidData),
            DataChecksum = checksum,
            ValidDataChecksum = validChecksum,
        };
    }
}
