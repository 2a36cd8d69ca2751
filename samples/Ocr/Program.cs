// OCR sample: PNG in, text lines out. Det, Cls and Rec are classes Squash.Build generates at build time from the PP-OCR
// models (the <SquashModel> items in Ocr.csproj); everything else is plain C# in this folder.
using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using Ocr;

const string Usage = """
    usage: Ocr IMAGE... [--threads N] [--verbose]
      Prints the text lines of each image (PNG, JPEG, BMP, TGA, GIF), top to bottom, left to right.
      --threads N  threads each model may use (default 1; 0 = every core)
      --verbose    also print each line's box and confidence, and the time taken, to standard error
    """;

var images = new List<string>();
int threads = 1;
bool verbose = false;
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "-h" or "--help":
            Console.WriteLine(Usage);
            return 0;
        case "--verbose":
            verbose = true;
            break;
        case "--threads" when i + 1 < args.Length && int.TryParse(args[i + 1], NumberStyles.None, CultureInfo.InvariantCulture, out threads):
            i++;
            break;
        case var a when a.StartsWith('-'):
            Console.Error.WriteLine($"Ocr: unknown or incomplete option '{a}'.");
            Console.Error.WriteLine(Usage);
            return 2;
        default:
            images.Add(args[i]);
            break;
    }
}
if (images.Count == 0)
{
    Console.Error.WriteLine(Usage);
    return 2;
}

var clock = Stopwatch.StartNew();
// With more than one thread each model owns worker threads until it is disposed.
using var det = new Det(threads);
using var cls = new Cls(threads);
using var rec = new Rec(threads);
var pipeline = new OcrPipeline(
    new TextDetector(det),
    new TextClassifier(cls),
    new TextRecognizer(rec, new CtcDecoder(ReadKeys())));
if (verbose) Console.Error.WriteLine($"models loaded in {clock.ElapsedMilliseconds} ms");

int failures = 0;
foreach (var path in images)
{
    RgbImage image;
    try
    {
        image = ImageOps.Load(path);
    }
    catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
    {
        Console.Error.WriteLine($"Ocr: {e.Message}");
        failures++;
        continue;
    }
    if (images.Count > 1) Console.WriteLine($"== {path}");
    clock.Restart();
    var lines = pipeline.Read(image);
    foreach (var line in lines)
    {
        Console.WriteLine(line.Text);
        if (verbose) Console.Error.WriteLine(FormattableString.Invariant($"  box {line.Box.X},{line.Box.Y} {line.Box.Width}x{line.Box.Height}, confidence {line.Score:F3}"));
    }
    if (verbose) Console.Error.WriteLine($"{path}: {lines.Count} lines in {clock.ElapsedMilliseconds} ms");
}
return failures == 0 ? 0 : 1;

// ppocr_keys_v1.txt, embedded by Ocr.csproj: the characters the recogniser's classes stand for, one per line.
static string[] ReadKeys()
{
    using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("ppocr_keys_v1.txt")
        ?? throw new InvalidOperationException("The embedded resource ppocr_keys_v1.txt is missing; check Ocr.csproj.");
    using var reader = new StreamReader(stream);
    var keys = new List<string>();
    while (reader.ReadLine() is { } key) keys.Add(key);
    return [.. keys];
}
